"""The decider: from a run's projected state, the next commands. Pure.

No clock, no I/O, no randomness: the local executor and the Temporal workflow both
call :func:`decide`, and a replay calling it again gets the same commands. It never
changes state itself; executors carry the commands out and record the results as
events, which the next call reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autopack.projection import PhaseView, RunView
from autopack.states import PHASE_ACTIVE, PHASE_TERMINAL, PhaseState, RunState


@dataclass(frozen=True)
class StartAttempt:
    """Begin attempt ``attempt`` of a phase from the run branch's current head."""

    phase_id: str
    attempt: int


@dataclass(frozen=True)
class RunStep:
    """Carry out one step of the phase's current attempt."""

    phase_id: str
    attempt: int
    step: str


@dataclass(frozen=True)
class FailPhase:
    phase_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class SkipPhase:
    phase_id: str
    reason: str


@dataclass(frozen=True)
class FinishRun:
    state: RunState
    reason: str


Command = StartAttempt | RunStep | FailPhase | SkipPhase | FinishRun


def decide(view: RunView, max_parallel: int = 1) -> list[Command]:
    """Every command that may be carried out now; empty when there is nothing to do.

    Phase commands come in plan order. At most ``max_parallel`` phases are active at
    once; phases waiting for approval do not count against it.
    """
    if view.state is not RunState.RUNNING:
        return []
    if view.cancel_requested:
        return [FinishRun(RunState.CANCELLED, view.reason or "cancelled")]
    skips = _skips(view)
    if skips:
        return list(skips)
    commands: list[Command] = []
    active = sum(1 for phase in view.phases.values() if phase.state in PHASE_ACTIVE)
    for phase in view.phases.values():
        if phase.state in PHASE_ACTIVE or phase.state is PhaseState.AWAITING_APPROVAL:
            command = _next_for_active(view, phase)
            if command is not None:
                commands.append(command)
        elif phase.state is PhaseState.QUEUED and active < max_parallel and _ready(view, phase):
            commands.append(StartAttempt(phase.id, phase.attempt + 1))
            active += 1
    if commands:
        return commands
    return _finish(view)


def max_attempts(view: RunView, phase_id: str) -> int:
    configured = view.plan.phase(phase_id).max_attempts
    return configured if configured is not None else view.plan.run.max_attempts


def next_step(phase: PhaseView) -> str | None:
    """The step of the current attempt still to run; ``None`` once the gate has spoken."""
    steps = phase.steps
    for step in ("build", "apply"):
        if step not in steps:
            return step
    if not steps["apply"].get("applied", False) or steps["build"].get("error"):
        return None if "gate" in steps else "gate"
    if "verify" not in steps:
        return "verify"
    if not steps["verify"].get("passed", False):
        return None if "gate" in steps else "gate"
    for step in ("audit", "gate"):
        if step not in steps:
            return step
    return None


def _next_for_active(view: RunView, phase: PhaseView) -> Command | None:
    step = next_step(phase)
    if step is not None:
        return RunStep(phase.id, phase.attempt, step)
    gate: dict[str, Any] = phase.steps["gate"]
    decision = gate.get("decision")
    commit = phase.steps.get("commit")
    if commit is not None and commit.get("conflict"):
        return _retry(view, phase, f"merge conflict: {commit['conflict']}")
    if commit is not None and commit.get("rebased_tree"):
        # Merge once the earlier phases have landed, not after each of them.
        return (
            None if _earlier_in_flight(view, phase) else StartAttempt(phase.id, phase.attempt + 1)
        )
    if decision == "PASS" or (decision == "NEEDS_APPROVAL" and phase.approval is not None):
        return (
            None if _earlier_in_flight(view, phase) else RunStep(phase.id, phase.attempt, "commit")
        )
    if decision == "NEEDS_APPROVAL":
        rejection = phase.rejection
        if rejection is not None and rejection.get("attempt") == phase.attempt:
            return _retry(view, phase, f"rejected: {rejection.get('note', '')}")
        return None
    if decision == "RETRY":
        return _retry(view, phase, "; ".join(gate.get("reasons", [])) or "gate asked for a retry")
    return None  # BLOCK: the projection has already failed the phase


def _earlier_in_flight(view: RunView, phase: PhaseView) -> bool:
    """Phases land in plan order: one that passed waits while an earlier one still works."""
    return any(
        other.position < phase.position and other.state in PHASE_ACTIVE
        for other in view.phases.values()
    )


def _retry(view: RunView, phase: PhaseView, reason: str) -> Command:
    used = phase.attempt - phase.attempt_floor
    limit = max_attempts(view, phase.id)
    if used >= limit:
        return FailPhase(phase.id, phase.attempt, f"{limit} attempts used; last: {reason}")
    return StartAttempt(phase.id, phase.attempt + 1)


def _ready(view: RunView, phase: PhaseView) -> bool:
    earlier_done = all(
        other.state is PhaseState.COMPLETE
        for other in view.phases.values()
        if other.tier < phase.tier
    )
    deps = view.plan.phase(phase.id).depends_on
    return earlier_done and all(view.phases[dep].state is PhaseState.COMPLETE for dep in deps)


def _skips(view: RunView) -> list[Command]:
    lost = {
        p.id for p in view.phases.values() if p.state in (PhaseState.FAILED, PhaseState.SKIPPED)
    }
    if not lost:
        return []
    lost_tiers = {view.phases[p].tier for p in lost}
    skips: list[Command] = []
    for phase in view.phases.values():
        if phase.state is not PhaseState.QUEUED:
            continue
        missing = [dep for dep in view.plan.phase(phase.id).depends_on if dep in lost]
        if missing:
            skips.append(
                SkipPhase(phase.id, f"depends on {', '.join(missing)}, which did not land")
            )
        elif any(tier < phase.tier for tier in lost_tiers):
            tier = min(t for t in lost_tiers if t < phase.tier)
            name = view.plan.tiers[tier].id
            skips.append(SkipPhase(phase.id, f"tier {name!r} did not complete"))
    return skips


def _finish(view: RunView) -> list[Command]:
    phases = list(view.phases.values())
    if not all(phase.state in PHASE_TERMINAL for phase in phases):
        return []  # waiting: approvals pending or steps in flight elsewhere
    failed = [phase for phase in phases if phase.state is not PhaseState.COMPLETE]
    if not failed:
        return [FinishRun(RunState.SUCCEEDED, f"{len(phases)} phases landed")]
    first = failed[0]
    detail = f"phase {first.id} {first.state.value.lower()}: {first.reason}"
    return [
        FinishRun(RunState.FAILED, f"{len(failed)} of {len(phases)} phases did not land; {detail}")
    ]
