"""What an ended run leaves for the ledgers and the memory: ``runs/<id>/summary.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopack.ledger.summary import (
    AttemptSummary,
    DecisionRecord,
    PhaseSummary,
    RunSummary,
    TestDelta,
)
from autopack.projection import PhaseView, RunView

SUMMARY_FILE = "summary.json"


def run_summary(view: RunView, ended_at: str) -> RunSummary:
    """The run's summary, from its projected state alone."""
    phases = tuple(_phase(view, phase) for phase in view.phases.values())
    decisions = tuple(
        _decision(phase.id, item)
        for phase in view.phases.values()
        for attempt in _all_attempts(phase)
        for item in attempt.get("build", {}).get("decisions", [])
        if isinstance(item, dict)
    )
    return RunSummary(
        run_id=view.run_id,
        goal=view.plan.run.goal,
        status=view.state.value,
        ended_at=ended_at,
        phases=phases,
        decisions=decisions,
        commits=tuple(phase.commit for phase in view.phases.values() if phase.commit),
        tests=_tests(view),
        branch=view.branch,
    )


def write_summary(run_dir: Path, summary: RunSummary) -> Path:
    path = run_dir / SUMMARY_FILE
    path.write_text(summary.to_json(), encoding="utf-8")
    return path


def _all_attempts(phase: PhaseView) -> list[dict[str, Any]]:
    return [entry["steps"] for entry in phase.attempts] + ([phase.steps] if phase.steps else [])


def _phase(view: RunView, phase: PhaseView) -> PhaseSummary:
    spec = view.plan.phase(phase.id)
    attempts = tuple(
        _attempt(number, steps, phase) for number, steps in enumerate(_all_attempts(phase), start=1)
    )
    return PhaseSummary(
        phase_id=phase.id,
        goal=spec.goal,
        state=phase.state.value,
        scope=tuple(spec.scope.paths),
        attempts=attempts,
        commit=phase.commit,
    )


def _attempt(number: int, steps: dict[str, Any], phase: PhaseView) -> AttemptSummary:
    gate = steps.get("gate", {})
    landed = "commit" in steps and "conflict" not in steps["commit"]
    last = number == len(phase.attempts) + (1 if phase.steps else 0)
    outcome = "pass" if landed else ("fail" if last and phase.reason else "retry")
    feedback = "" if landed else str(gate.get("feedback") or phase.reason)
    return AttemptSummary(
        attempt=number,
        outcome=outcome,
        feedback=feedback,
        change_summary=str(steps.get("build", {}).get("summary", "")),
    )


def _decision(phase_id: str, item: dict[str, Any]) -> DecisionRecord:
    fields = ("title", "context", "decision", "rationale", "alternatives")
    values = {key: str(item.get(key, "")) for key in fields}
    return DecisionRecord(**values, source="builder", phase_id=phase_id)


def _tests(view: RunView) -> TestDelta:
    """Counts from the first attempt's baseline and the last landed attempt's full run."""
    before = after = None
    for phase in view.phases.values():
        for steps in _all_attempts(phase):
            counts = steps.get("verify", {}).get("counts")
            if counts and before is None:
                before = counts.get("baseline")
            if counts and "commit" in steps:
                after = counts.get("full")
    before, after = before or {}, after or {}
    return TestDelta(
        passed_before=int(before.get("passed", 0)),
        passed_after=int(after.get("passed", 0)),
        failed_before=int(before.get("failed", 0)) + int(before.get("error", 0)),
        failed_after=int(after.get("failed", 0)) + int(after.get("error", 0)),
    )
