"""Run and phase states, and the only moves allowed between them.

The tables below are the single authority on state changes: the store refuses to
project an event that implies a move not listed here, so a bug in the engine shows
up as an exception instead of as a run in an impossible state.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Lifecycle of a whole run."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class PhaseState(StrEnum):
    """Lifecycle of one phase inside a run."""

    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    VERIFYING = "VERIFYING"
    AUDITING = "AUDITING"
    GATING = "GATING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    """Stopped mid-attempt because its run was cancelled; a resume carries the attempt on."""


class IllegalTransition(ValueError):
    """A state change that the transition table does not allow."""


RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.CANCELLED, RunState.FAILED}),
    RunState.RUNNING: frozenset(
        {RunState.PAUSED, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED}
    ),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.CANCELLED, RunState.FAILED}),
    # A cancelled or failed run may be resumed; it goes back to RUNNING.
    RunState.FAILED: frozenset({RunState.RUNNING}),
    RunState.CANCELLED: frozenset({RunState.RUNNING}),
    RunState.SUCCEEDED: frozenset(),
}

_ACTIVE_PHASE = (
    PhaseState.BUILDING,
    PhaseState.VERIFYING,
    PhaseState.AUDITING,
    PhaseState.GATING,
)

_STOPPED = PhaseState.CANCELLED  # any attempt in progress stops when its run is cancelled

PHASE_TRANSITIONS: dict[PhaseState, frozenset[PhaseState]] = {
    PhaseState.QUEUED: frozenset({PhaseState.BUILDING, PhaseState.SKIPPED, PhaseState.FAILED}),
    # BUILDING and VERIFYING may go straight to GATING: a refused edit or failing tests
    # are evidence the gate decides on without spending an audit.
    PhaseState.BUILDING: frozenset(
        {PhaseState.VERIFYING, PhaseState.GATING, PhaseState.FAILED, _STOPPED}
    ),
    PhaseState.VERIFYING: frozenset(
        {PhaseState.AUDITING, PhaseState.GATING, PhaseState.FAILED, _STOPPED}
    ),
    PhaseState.AUDITING: frozenset({PhaseState.GATING, PhaseState.FAILED, _STOPPED}),
    PhaseState.GATING: frozenset(
        {
            PhaseState.COMPLETE,
            PhaseState.BUILDING,  # retry: the next attempt starts
            PhaseState.AWAITING_APPROVAL,
            PhaseState.FAILED,
            _STOPPED,
        }
    ),
    PhaseState.AWAITING_APPROVAL: frozenset(
        {
            PhaseState.GATING,  # approved: the commit step runs
            PhaseState.BUILDING,  # rejected with a note: the next attempt starts
            PhaseState.FAILED,  # rejected for good, or the approval timed out
            _STOPPED,
        }
    ),
    # Resumed: back where the attempt stood, with the same attempt number.
    PhaseState.CANCELLED: frozenset({*_ACTIVE_PHASE, PhaseState.AWAITING_APPROVAL}),
    PhaseState.COMPLETE: frozenset(),
    # A failed or skipped phase is queued again only when its run is resumed.
    PhaseState.FAILED: frozenset({PhaseState.QUEUED}),
    PhaseState.SKIPPED: frozenset({PhaseState.QUEUED}),
}

RUN_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
PHASE_TERMINAL = frozenset({PhaseState.COMPLETE, PhaseState.FAILED, PhaseState.SKIPPED})
PHASE_ACTIVE = frozenset(_ACTIVE_PHASE)


def check_run_transition(current: RunState, new: RunState) -> RunState:
    """Return ``new`` when the run may move there from ``current``; raise otherwise."""
    if new not in RUN_TRANSITIONS[current]:
        raise IllegalTransition(f"run cannot move from {current} to {new}")
    return new


def check_phase_transition(current: PhaseState, new: PhaseState) -> PhaseState:
    """Return ``new`` when the phase may move there from ``current``; raise otherwise."""
    if new not in PHASE_TRANSITIONS[current]:
        raise IllegalTransition(f"phase cannot move from {current} to {new}")
    return new
