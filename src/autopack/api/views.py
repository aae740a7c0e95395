"""Turning the store's projections and a run's artifacts into API bodies."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autopack.api.models import (
    AttemptEvidence,
    Budget,
    PhaseSummary,
    RunDetail,
    RunSummary,
    TierView,
)
from autopack.engine.runtime import Runtime
from autopack.projection import PhaseView, RunView
from autopack.states import PhaseState
from autopack.store import RunRow

DIFF_CAP = 512_000
"""A diff bigger than this is cut (the dashboard cannot show more usefully)."""


def run_summary(row: RunRow) -> RunSummary:
    return RunSummary(**asdict(row))


def summary_of(view: RunView) -> RunSummary:
    """The run's list row, from the projection the caller already holds (one query less)."""
    states = [phase.state for phase in view.phases.values()]
    return RunSummary(
        id=view.run_id,
        state=view.state.value,
        goal=view.plan.run.goal,
        repo=view.repo,
        branch=view.branch,
        reason=view.reason,
        phases_total=len(states),
        phases_complete=states.count(PhaseState.COMPLETE),
        pending_approvals=states.count(PhaseState.AWAITING_APPROVAL),
        tokens=view.spend.tokens,
        cost_usd=view.spend.cost_usd,
        model_calls=view.spend.model_calls,
        created_at=view.created_at,
        updated_at=view.updated_at,
        last_seq=view.last_seq,
    )


class RunBodies:
    """The JSON body of ``GET /runs/{id}`` per run, reused while the run has no new event.

    Dashboards re-read a run far more often than it changes, and building, validating
    and serialising the body cost more than the rest of the request.
    """

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[tuple[int, bool], bytes]] = {}

    def body(self, view: RunView, executing: bool) -> bytes:
        stamp = (view.last_seq, executing)
        found = self._bodies.get(view.run_id)
        if found is not None and found[0] == stamp:
            return found[1]
        detail = RunDetail(
            run=summary_of(view),
            tiers=tiers(view),
            budget=budget(view),
            cancel_requested=view.cancel_requested,
            executing=executing,
        )
        body = detail.model_dump_json().encode()
        self._bodies[view.run_id] = (stamp, body)
        return body


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


def tiers(view: RunView) -> list[TierView]:
    grouped: list[TierView] = [
        TierView(id=tier.id, name=tier.name or tier.id, phases=[]) for tier in view.plan.tiers
    ]
    for phase in sorted(view.phases.values(), key=lambda p: p.position):
        grouped[phase.tier].phases.append(phase_summary(view, phase))
    return grouped


def budget(view: RunView) -> Budget:
    caps = view.plan.run.budget
    return Budget(
        caps={"tokens": caps.tokens, "cost_usd": caps.cost_usd, "model_calls": caps.model_calls},
        used={
            "tokens": view.spend.tokens,
            "cost_usd": view.spend.cost_usd,
            "model_calls": view.spend.model_calls,
        },
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
