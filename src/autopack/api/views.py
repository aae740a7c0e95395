"""Turning the store's projections and a run's artifacts into API bodies."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from autopack.api.models import (
    ActivePhase,
    AttemptEvidence,
    Budget,
    PhaseSummary,
    Progress,
    RunDetail,
    RunSummary,
    TierView,
)
from autopack.engine.runtime import Runtime
from autopack.plan import Plan
from autopack.projection import PhaseView, RunView
from autopack.states import PHASE_ACTIVE, PhaseState
from autopack.store import PhaseRow, RunRow, RunSnapshot, Store

DIFF_CAP = 512_000
"""A diff bigger than this is cut (the dashboard cannot show more usefully)."""


def run_summary(row: RunRow) -> RunSummary:
    return RunSummary(**vars(row))


BODIES_CACHED = 4096
"""Run bodies kept (about 1-10 kB each): a dashboard's working set, with room to spare."""


class RunBodies:
    """The JSON body of ``GET /runs/{id}``, reused while the run has no new event.

    Dashboards re-read a run far more often than it changes, and building, validating
    and serialising the body cost more than the rest of the request. A body is built
    from the run's projection rows (:meth:`Store.snapshot`), never from a fold, so the
    first read of a long run costs what a short one does; one cheap read of the run's
    sequence number tells whether the kept body is current.
    """

    def __init__(self) -> None:
        self._bodies: OrderedDict[str, tuple[tuple[int, bool], bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def body(self, store: Store, run_id: str, executing: bool) -> bytes:
        """The run's current body; raises ``RunNotFound``."""
        stamp = (store.last_seq(run_id), executing)
        with self._lock:
            found = self._bodies.get(run_id)
            if found is not None and found[0] == stamp:
                self._bodies.move_to_end(run_id)
                return found[1]
        snap = store.snapshot(run_id)
        body = run_detail(snap, executing).model_dump_json().encode()
        with self._lock:
            self._bodies[run_id] = ((snap.run.last_seq, executing), body)
            self._bodies.move_to_end(run_id)
            if len(self._bodies) > BODIES_CACHED:
                self._bodies.popitem(last=False)
        return body


def run_detail(snap: RunSnapshot, executing: bool) -> RunDetail:
    """``GET /runs/{id}`` from the projection rows: the same body a full fold gives."""
    tiers = [TierView(id=t.id, name=t.name or t.id, phases=[]) for t in snap.plan.tiers]
    for row in snap.phases:
        tiers[row.tier].phases.append(_row_summary(snap, row))
    run = snap.run
    return RunDetail(
        run=run_summary(run),
        tiers=tiers,
        budget=_budget(snap.plan, run.tokens, run.cost_usd, run.model_calls),
        cancel_requested=snap.cancel_requested,
        executing=executing,
    )


def phase_summaries(snap: RunSnapshot) -> list[PhaseSummary]:
    """Every phase of the run in plan order, from the projection rows."""
    return [_row_summary(snap, row) for row in snap.phases]


def progress_of(snap: RunSnapshot) -> Progress:
    """What a progress bar needs, from the projection rows."""
    phases = snap.phases
    done = sum(p.state == PhaseState.COMPLETE.value for p in phases)
    waiting = sum(p.state == PhaseState.AWAITING_APPROVAL.value for p in phases)
    shown = {state.value for state in PHASE_ACTIVE} | {PhaseState.AWAITING_APPROVAL.value}
    run = snap.run
    return Progress(
        run_id=run.id,
        state=run.state,
        phases_total=len(phases),
        phases_complete=done,
        pending_approvals=waiting,
        fraction=round(done / len(phases), 4) if phases else 0.0,
        active=[
            ActivePhase(id=p.phase_id, state=p.state, step=p.step, attempt=p.attempt)
            for p in phases
            if p.state in shown
        ],
        budget=_budget(snap.plan, run.tokens, run.cost_usd, run.model_calls),
    )


def _row_summary(snap: RunSnapshot, row: PhaseRow) -> PhaseSummary:
    spec = snap.plan.phase(row.phase_id)
    return PhaseSummary(
        id=row.phase_id,
        tier=row.tier,
        goal=spec.goal,
        risk=spec.risk,
        state=row.state,
        attempt=row.attempt,
        step=row.step,
        reason=row.reason,
        decision=row.decision,
        proof_hash=row.proof_hash or snap.gate_proofs.get(row.phase_id, ""),
        commit=row.commit_sha,
        tokens=row.tokens,
        cost_usd=row.cost_usd,
        model_calls=row.model_calls,
    )


def phase_summary(view: RunView, phase: PhaseView) -> PhaseSummary:
    spec = view.plan.phase(phase.id)
    return PhaseSummary(
        id=phase.id,
        tier=phase.tier,
        goal=spec.goal,
        risk=spec.risk,
        state=phase.state.value,
        attempt=phase.attempt,
        step=phase.step,
        reason=phase.reason,
        decision=str(phase.steps.get("gate", {}).get("decision", "")),
        proof_hash=phase.proof_hash or str(phase.steps.get("gate", {}).get("proof_hash", "")),
        commit=phase.commit,
        tokens=phase.spend.tokens,
        cost_usd=phase.spend.cost_usd,
        model_calls=phase.spend.model_calls,
    )


def _budget(plan: Plan, tokens: int, cost_usd: float, model_calls: int) -> Budget:
    caps = plan.run.budget
    return Budget(
        caps={"tokens": caps.tokens, "cost_usd": caps.cost_usd, "model_calls": caps.model_calls},
        used={"tokens": tokens, "cost_usd": cost_usd, "model_calls": model_calls},
    )


def attempt_steps(phase: PhaseView) -> dict[int, dict[str, dict[str, Any]]]:
    """Recorded step results of every attempt, current one included."""
    found = {int(a["attempt"]): a["steps"] for a in phase.attempts}
    if phase.attempt:
        found[phase.attempt] = phase.steps
    return found


def evidence(
    rt: Runtime, run_id: str, phase_id: str, attempt: int, steps: dict[str, Any]
) -> AttemptEvidence:
    folder = rt.run_dir(run_id) / "phases" / phase_id / str(attempt)
    verify = _json(folder / "verify.json")
    gate = steps.get("gate", {})
    audit = steps.get("audit", {})
    found = verify.get("delta")
    delta: dict[str, Any] = found if isinstance(found, dict) else {}
    return AttemptEvidence(
        attempt=attempt,
        steps=steps,
        diff=_text(folder / "changes.diff"),
        test_delta={k: [str(t) for t in v] for k, v in delta.items() if isinstance(v, list)},
        tests_passed=verify.get("passed") if isinstance(verify.get("passed"), bool) else None,
        decision=str(gate.get("decision", "")),
        reasons=[str(r) for r in gate.get("reasons", [])],
        audit_issues=[i for i in audit.get("issues", []) if isinstance(i, dict)],
        audit_summary=str(audit.get("summary", "")),
        proof_hash=str(gate.get("proof_hash", "")),
    )


def _text(path: Path) -> str:
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text if len(text) <= DIFF_CAP else text[:DIFF_CAP] + "\n... (cut)\n"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
