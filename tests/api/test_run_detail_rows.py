"""GET /runs/{id}, its progress and its phases are built from the projection rows; they
must say what a full fold says.

The reference below is the body as it was built from a folded RunView before the rows
path existed. Each run is driven through the event log into one situation a dashboard
shows: queued, mid-step, retried and waiting for approval, landed, cancel pending,
cancelled, failed with a skipped dependant, resumed after failing, rejected, paused,
succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autopack.api.models import (
    ActivePhase,
    Budget,
    PhaseSummary,
    Progress,
    RunDetail,
    RunSummary,
    TierView,
)
from autopack.api.views import (
    RunBodies,
    phase_summaries,
    phase_summary,
    progress_of,
    run_detail,
)
from autopack.events import (
    ApprovalGranted,
    ApprovalRejected,
    CancelRequested,
    ModelCalled,
    Payload,
    PhaseFailed,
    PhaseSkipped,
    PhaseStarted,
    RunCreated,
    RunFinished,
    RunPaused,
    RunStarted,
    StepCompleted,
    StepStarted,
)
from autopack.plan import Plan
from autopack.projection import RunView, fold
from autopack.states import PHASE_ACTIVE, PhaseState
from autopack.store import SqlStore, Store

PLAN = {
    "run": {"goal": "Two tiers", "budget": {"tokens": 50_000, "cost_usd": 2.5}},
    "tiers": [
        {
            "id": "first",
            "name": "First tier",
            "phases": [
                {"id": "a", "goal": "Do a", "risk": "high", "scope": {"paths": ["a.py"]}},
                {"id": "b", "goal": "Do b", "scope": {"paths": ["b.py"]}},
            ],
        },
        {"id": "second", "phases": [{"id": "c", "goal": "Do c", "scope": {"paths": ["c.py"]}}]},
    ],
}
BASE = "0" * 40


def reference(view: RunView, executing: bool) -> RunDetail:
    """The detail as a full fold gives it (the body served before the rows path)."""
    states = [p.state for p in view.phases.values()]
    tiers = [TierView(id=t.id, name=t.name or t.id, phases=[]) for t in view.plan.tiers]
    for phase in sorted(view.phases.values(), key=lambda p: p.position):
        spec = view.plan.phase(phase.id)
        gate = phase.steps.get("gate", {})
        tiers[phase.tier].phases.append(
            PhaseSummary(
                id=phase.id,
                tier=phase.tier,
                goal=spec.goal,
                risk=spec.risk,
                state=phase.state.value,
                attempt=phase.attempt,
                step=phase.step,
                reason=phase.reason,
                decision=str(gate.get("decision", "")),
                proof_hash=phase.proof_hash or str(gate.get("proof_hash", "")),
                commit=phase.commit,
                tokens=phase.spend.tokens,
                cost_usd=phase.spend.cost_usd,
                model_calls=phase.spend.model_calls,
            )
        )
    caps = view.plan.run.budget.model_dump(include={"tokens", "cost_usd", "model_calls"})
    spend = view.spend
    return RunDetail(
        run=RunSummary(
            id=view.run_id,
            state=view.state.value,
            goal=view.plan.run.goal,
            repo=view.repo,
            branch=view.branch,
            reason=view.reason,
            phases_total=len(states),
            phases_complete=states.count(PhaseState.COMPLETE),
            pending_approvals=states.count(PhaseState.AWAITING_APPROVAL),
            tokens=spend.tokens,
            cost_usd=spend.cost_usd,
            model_calls=spend.model_calls,
            created_at=view.created_at,
            updated_at=view.updated_at,
            last_seq=view.last_seq,
        ),
        tiers=tiers,
        budget=Budget(
            caps=caps,
            used={
                "tokens": spend.tokens,
                "cost_usd": spend.cost_usd,
                "model_calls": spend.model_calls,
            },
        ),
        cancel_requested=view.cancel_requested,
        executing=executing,
    )


def reference_progress(view: RunView) -> Progress:
    """GET /runs/{id}/progress as a full fold gives it."""
    phases = list(view.phases.values())
    done = sum(p.state is PhaseState.COMPLETE for p in phases)
    waiting = [p for p in phases if p.state is PhaseState.AWAITING_APPROVAL]
    active = [p for p in phases if p.state in PHASE_ACTIVE or p in waiting]
    return Progress(
        run_id=view.run_id,
        state=view.state.value,
        phases_total=len(phases),
        phases_complete=done,
        pending_approvals=len(waiting),
        fraction=round(done / len(phases), 4) if phases else 0.0,
        active=[
            ActivePhase(id=p.id, state=p.state.value, step=p.step, attempt=p.attempt)
            for p in active
        ],
        budget=reference(view, False).budget,
    )


def call(phase: str, attempt: int, tokens: int, cost: float) -> ModelCalled:
    return ModelCalled(
        phase_id=phase,
        attempt=attempt,
        role="builder",
        model="m",
        input_tokens=tokens,
        output_tokens=tokens // 10,
        cost_usd=cost,
    )


def gate(phase: str, attempt: int, decision: str, proof: str) -> list[Payload]:
    result: dict[str, Any] = {"decision": decision, "reasons": ["r"], "proof_hash": proof}
    return [
        StepStarted(phase_id=phase, attempt=attempt, step="gate"),
        StepCompleted(phase_id=phase, attempt=attempt, step="gate", result=result),
    ]


def attempt(phase: str, number: int, decision: str, proof: str) -> list[Payload]:
    build = {"edits": 1}
    return [
        PhaseStarted(phase_id=phase, attempt=number, base_commit=BASE),
        StepStarted(phase_id=phase, attempt=number, step="build"),
        call(phase, number, 1200 * number, 0.0123),
        StepCompleted(phase_id=phase, attempt=number, step="build", result=build),
        *gate(phase, number, decision, proof),
    ]


def land(phase: str, number: int, proof: str) -> list[Payload]:
    done = {"commit": "c" * 40, "proof_hash": proof}
    return [
        StepStarted(phase_id=phase, attempt=number, step="commit"),
        StepCompleted(phase_id=phase, attempt=number, step="commit", result=done),
    ]


START = RunStarted(executor="test")
RETRIED_AND_WAITING = [
    START,
    *attempt("a", 1, "RETRY", "p1" * 32),
    *attempt("a", 2, "NEEDS_APPROVAL", "p2" * 32),
]
LANDED_A = [
    *RETRIED_AND_WAITING,
    ApprovalGranted(phase_id="a", attempt=2, note="ok", by="ann"),
    *land("a", 2, "p2" * 32),
]
FAILED_B = [
    *LANDED_A,
    *attempt("b", 1, "BLOCK", "p3" * 32),
    PhaseSkipped(phase_id="c", reason="b did not land"),
    RunFinished(state="FAILED", reason="b blocked"),
]
SITUATIONS: dict[str, list[Payload]] = {
    "queued": [],
    "mid-step": [
        START,
        PhaseStarted(phase_id="b", attempt=1, base_commit=BASE),
        StepStarted(phase_id="b", attempt=1, step="build"),
        call("b", 1, 900, 0.004),
        call(None, None, 50, 0.0001),  # type: ignore[arg-type]
    ],
    "retried, waiting for approval": RETRIED_AND_WAITING,
    "landed after approval": LANDED_A,
    "cancel pending": [*LANDED_A, CancelRequested(reason="stop")],
    "cancelled": [*LANDED_A, CancelRequested(), RunFinished(state="CANCELLED")],
    "failed, dependant skipped": FAILED_B,
    "resumed after failing": [*FAILED_B, RunStarted(executor="test", resumed=True)],
    "rejected, next attempt": [
        *RETRIED_AND_WAITING,
        ApprovalRejected(phase_id="a", attempt=2, note="not like this", by="bo"),
        *attempt("a", 3, "PASS", "p4" * 32)[:-1],
    ],
    "rejected for good": [
        *RETRIED_AND_WAITING,
        ApprovalRejected(phase_id="a", attempt=2, note="no", fail=True),
        PhaseFailed(phase_id="b", attempt=0, reason="a failed"),
    ],
    "paused": [*RETRIED_AND_WAITING, RunPaused(reason="ctrl-c")],
    "succeeded": [
        *LANDED_A,
        *attempt("b", 1, "PASS", "p5" * 32),
        *land("b", 1, "p5" * 32),
        *attempt("c", 1, "PASS", "p6" * 32),
        *land("c", 1, "p6" * 32),
        RunFinished(state="SUCCEEDED"),
    ],
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SqlStore(f"sqlite:///{tmp_path / 'autopack.db'}", runs_dir=tmp_path / "runs")


def create(store: Store, run_id: str) -> None:
    plan = Plan.model_validate(PLAN)
    created = RunCreated(
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest(),
        plan_source="test",
        repo="/repo",
        base_commit=BASE,
        branch=f"autopack/{run_id}",
    )
    store.create_run(run_id, created)


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_the_rows_give_the_detail_a_full_fold_gives(store: Store, situation: str) -> None:
    create(store, "r")
    for payload in SITUATIONS[situation]:
        store.append("r", payload)
    folded = fold(store.events("r"))
    snap = store.snapshot("r")
    for executing in (False, True):
        assert run_detail(snap, executing) == reference(folded, executing)
    assert progress_of(snap) == reference_progress(folded)
    in_order = sorted(folded.phases.values(), key=lambda p: p.position)
    assert phase_summaries(snap) == [phase_summary(folded, p) for p in in_order]


def test_the_situations_cover_what_a_dashboard_shows(store: Store) -> None:
    """Guards the test above: approvals waiting, retries, cancel pending, every run state."""
    seen_runs: set[str] = set()
    seen: dict[str, Callable[[RunDetail], bool]] = {
        "waiting": lambda d: d.run.pending_approvals > 0,
        "retried": lambda d: any(p.attempt > 1 for t in d.tiers for p in t.phases),
        "cancel pending": lambda d: d.cancel_requested and d.run.state == "RUNNING",
        "gate proof before landing": lambda d: any(
            p.proof_hash and not p.commit for t in d.tiers for p in t.phases
        ),
    }
    found: set[str] = set()
    for index, payloads in enumerate(SITUATIONS.values()):
        create(store, f"r{index}")
        for payload in payloads:
            store.append(f"r{index}", payload)
        detail = run_detail(store.snapshot(f"r{index}"), False)
        seen_runs.add(detail.run.state)
        found |= {name for name, check in seen.items() if check(detail)}
    assert seen_runs == {"QUEUED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"}
    assert found == set(seen)


def test_a_kept_body_is_replaced_by_the_next_event(store: Store) -> None:
    create(store, "r")
    bodies = RunBodies()
    first = bodies.body(store, "r", executing=False)
    assert bodies.body(store, "r", executing=False) is first
    store.append("r", START)
    moved = bodies.body(store, "r", executing=False)
    assert b'"state":"RUNNING"' in moved and moved != first
    assert b'"executing":true' in bodies.body(store, "r", executing=True)


def test_rows_agree_with_the_fold_after_every_event(store: Store) -> None:
    """What is kept between reads (marks, plans) never makes a later read wrong."""
    create(store, "r")
    history = [
        *SITUATIONS["resumed after failing"],
        CancelRequested(reason="enough"),
        RunFinished(state="CANCELLED"),
        RunStarted(executor="test", resumed=True),
    ]
    for payload in history:
        store.append("r", payload)
        assert run_detail(store.snapshot("r"), False) == reference(fold(store.events("r")), False)
