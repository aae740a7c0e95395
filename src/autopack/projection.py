"""Run and phase state as a pure fold over the event log.

The store applies :func:`apply` to keep its projection tables current, and the
decider reads the :class:`RunView` it produces; both therefore agree by construction.
Every state change goes through :mod:`autopack.states`, so an event that implies an
illegal move raises instead of being projected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from autopack.events import (
    ApprovalGranted,
    ApprovalRejected,
    CancelRequested,
    Event,
    ModelCalled,
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
from autopack.states import (
    PHASE_ACTIVE,
    PhaseState,
    RunState,
    check_phase_transition,
    check_run_transition,
)

STEP_STATE: dict[str, PhaseState] = {
    "build": PhaseState.BUILDING,
    "apply": PhaseState.BUILDING,
    "verify": PhaseState.VERIFYING,
    "audit": PhaseState.AUDITING,
    "gate": PhaseState.GATING,
    "commit": PhaseState.GATING,
}


@dataclass
class Spend:
    """Tokens, cost and calls, for a run or a phase."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    cache_read_tokens: int = 0
    """Part of ``input_tokens`` read from a provider's prompt cache."""
    cache_write_tokens: int = 0
    """Part of ``input_tokens`` written to a provider's prompt cache."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def add(self, call: ModelCalled) -> None:
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cache_read_tokens += call.cache_read_tokens
        self.cache_write_tokens += call.cache_write_tokens
        self.cost_usd = round(self.cost_usd + call.cost_usd, 6)
        self.model_calls += 1


@dataclass
class PhaseView:
    """What is known about one phase of a run."""

    id: str
    tier: int
    position: int
    state: PhaseState = PhaseState.QUEUED
    attempt: int = 0
    attempt_floor: int = 0
    base_commit: str = ""
    rebase_tree: str = ""
    step: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    commit: str = ""
    proof_hash: str = ""
    approval: dict[str, Any] | None = None
    awaiting_since: str = ""
    calls: list[tuple[str, int]] = field(default_factory=list)
    """(role, attempt) of every recorded model call, in order."""
    rejection: dict[str, Any] | None = None
    spend: Spend = field(default_factory=Spend)
    stopped_in: PhaseState | None = None
    """Where a CANCELLED phase's attempt stood; a resume puts it back there."""

    def move(self, new: PhaseState) -> None:
        if new != self.state:
            self.state = check_phase_transition(self.state, new)


@dataclass
class RunView:
    """The projected state of a run: the decider's whole input besides the plan."""

    run_id: str
    plan: Plan
    plan_source: str
    repo: str
    base_commit: str
    branch: str
    settings: dict[str, Any]
    state: RunState = RunState.QUEUED
    phases: dict[str, PhaseView] = field(default_factory=dict)
    reason: str = ""
    cancel_requested: bool = False
    last_seq: int = 0
    last_proof_hash: str = ""
    created_at: str = ""
    updated_at: str = ""
    spend: Spend = field(default_factory=Spend)

    def move(self, new: RunState) -> None:
        if new != self.state:
            self.state = check_run_transition(self.state, new)


def fold(events: Iterable[Event]) -> RunView:
    """Project a whole event log; raises ``ValueError`` when it does not start a run."""
    view: RunView | None = None
    for event in events:
        view = apply(view, event)
    if view is None:
        raise ValueError("empty event log")
    return view


def apply(view: RunView | None, event: Event) -> RunView:
    """Return the view after ``event``. ``view`` is updated in place when given."""
    payload = event.payload()
    if view is None:
        if not isinstance(payload, RunCreated):
            raise ValueError(f"a run's log must start with run_created, not {event.type}")
        return _created(event, payload)
    view.last_seq = event.seq
    view.updated_at = event.ts or view.updated_at
    handler = _HANDLERS.get(type(payload))
    if handler is not None:
        handler(view, payload)
    return view


def _created(event: Event, created: RunCreated) -> RunView:
    plan = Plan.model_validate(created.plan)
    view = RunView(
        run_id=event.run_id,
        plan=plan,
        plan_source=created.plan_source,
        repo=created.repo,
        base_commit=created.base_commit,
        branch=created.branch,
        settings=dict(created.settings),
        last_seq=event.seq,
        created_at=event.ts,
        updated_at=event.ts,
    )
    for position, (tier, phase) in enumerate(plan.phases()):
        view.phases[phase.id] = PhaseView(id=phase.id, tier=tier, position=position)
    return view


def _run_started(view: RunView, started: Any) -> None:
    if view.state in (RunState.FAILED, RunState.CANCELLED):
        for phase in view.phases.values():
            if phase.state in (PhaseState.FAILED, PhaseState.SKIPPED):
                phase.move(PhaseState.QUEUED)
                phase.attempt_floor = phase.attempt
                phase.reason = ""
    for phase in view.phases.values():
        if phase.state is PhaseState.CANCELLED and phase.stopped_in is not None:
            phase.move(phase.stopped_in)
            phase.stopped_in = None
    view.cancel_requested = False
    view.reason = ""
    view.move(RunState.RUNNING)


def _run_finished(view: RunView, finished: RunFinished) -> None:
    view.move(RunState(finished.state))
    view.reason = finished.reason
    for phase in view.phases.values():
        phase.step = None
        stopped = phase.state in PHASE_ACTIVE or phase.state is PhaseState.AWAITING_APPROVAL
        if view.state is RunState.CANCELLED and stopped:
            phase.stopped_in = phase.state
            phase.move(PhaseState.CANCELLED)


def _run_paused(view: RunView, paused: RunPaused) -> None:
    view.move(RunState.PAUSED)
    view.reason = paused.reason
    for phase in view.phases.values():
        phase.step = None


def _cancel_requested(view: RunView, cancel: CancelRequested) -> None:
    view.cancel_requested = True
    view.reason = cancel.reason or "cancelled"


def _phase_started(view: RunView, started: PhaseStarted) -> None:
    phase = view.phases[started.phase_id]
    carried = _carried_approval(phase) if started.rebase_tree else None
    if phase.steps:
        phase.attempts.append({"attempt": phase.attempt, "steps": phase.steps})
    phase.move(PhaseState.BUILDING)
    phase.attempt = started.attempt
    phase.base_commit = started.base_commit
    phase.rebase_tree = started.rebase_tree
    if started.rebase_tree:
        phase.attempt_floor += 1  # re-landing a passed change costs no attempt
    phase.steps = {}
    phase.step = None
    phase.approval = carried


def _carried_approval(phase: PhaseView) -> dict[str, Any] | None:
    """A person's approval of a change that is now merged onto a moved run branch: it
    stays with the change, with the reasons it answered (see :func:`_still_approved`)."""
    if phase.approval is None:
        return None
    reasons = phase.approval.get("reasons") or phase.steps.get("gate", {}).get("reasons", [])
    carried_from = phase.approval.get("carried_from", phase.attempt)
    return {**phase.approval, "carried_from": carried_from, "reasons": list(reasons)}


def _still_approved(phase: PhaseView, reasons: list[str]) -> bool:
    """Whether an approval carried onto this attempt answers every reason its gate asks a
    person for: the same change asks nothing new, so nobody is asked twice for it."""
    if phase.approval is None or "carried_from" not in phase.approval:
        return False
    return set(reasons) <= set(phase.approval.get("reasons", []))


def _step_started(view: RunView, started: StepStarted) -> None:
    phase = view.phases[started.phase_id]
    phase.move(STEP_STATE[started.step])
    phase.step = started.step


def _step_completed(view: RunView, done: StepCompleted) -> None:
    phase = view.phases[done.phase_id]
    phase.move(STEP_STATE[done.step])  # a completed step implies it started
    phase.steps[done.step] = done.result
    phase.step = None
    if done.step == "gate":
        view.last_proof_hash = str(done.result.get("proof_hash", view.last_proof_hash))
        decision = done.result.get("decision")
        if decision == "NEEDS_APPROVAL" and _still_approved(phase, done.result.get("reasons", [])):
            pass  # approved already: the decider lands it
        elif decision == "NEEDS_APPROVAL":
            phase.approval = None
            phase.move(PhaseState.AWAITING_APPROVAL)
            phase.awaiting_since = view.updated_at
        elif decision == "BLOCK":
            phase.move(PhaseState.FAILED)
            phase.reason = "gate blocked: " + "; ".join(done.result.get("reasons", []))
    elif done.step == "commit" and "commit" in done.result:
        phase.move(PhaseState.COMPLETE)
        phase.commit = str(done.result.get("commit", ""))
        phase.proof_hash = str(done.result.get("proof_hash", ""))
        view.last_proof_hash = phase.proof_hash  # an approved landing adds a proof


def _model_called(view: RunView, call: ModelCalled) -> None:
    view.spend.add(call)
    if call.phase_id in view.phases:
        phase = view.phases[call.phase_id]
        phase.spend.add(call)
        phase.calls.append((call.role, call.attempt or 0))


def _phase_failed(view: RunView, failed: PhaseFailed) -> None:
    phase = view.phases[failed.phase_id]
    phase.move(PhaseState.FAILED)
    phase.reason = failed.reason
    phase.step = None


def _phase_skipped(view: RunView, skipped: PhaseSkipped) -> None:
    phase = view.phases[skipped.phase_id]
    phase.move(PhaseState.SKIPPED)
    phase.reason = skipped.reason


def _approval_granted(view: RunView, granted: ApprovalGranted) -> None:
    phase = view.phases[granted.phase_id]
    phase.move(PhaseState.GATING)
    phase.approval = {"note": granted.note, "by": granted.by, "at": view.updated_at}


def _approval_rejected(view: RunView, rejected: ApprovalRejected) -> None:
    phase = view.phases[rejected.phase_id]
    phase.rejection = {"note": rejected.note, "by": rejected.by, "attempt": rejected.attempt}
    if rejected.fail:
        phase.move(PhaseState.FAILED)
        phase.reason = f"rejected: {rejected.note}"


_HANDLERS: dict[type, Any] = {
    RunStarted: _run_started,
    RunFinished: _run_finished,
    RunPaused: _run_paused,
    CancelRequested: _cancel_requested,
    PhaseStarted: _phase_started,
    StepStarted: _step_started,
    StepCompleted: _step_completed,
    ModelCalled: _model_called,
    PhaseFailed: _phase_failed,
    PhaseSkipped: _phase_skipped,
    ApprovalGranted: _approval_granted,
    ApprovalRejected: _approval_rejected,
}
