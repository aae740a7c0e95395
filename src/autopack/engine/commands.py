"""What changes a run from outside its executor: approve, reject, cancel, pause.

Each command checks the run's state and appends its event; nothing else writes a
person's answer, a cancel or a pause into a run. The CLI, the HTTP API, the MCP server,
the run hosts and the Temporal activities call these, so every entry point refuses the
same things with the same words and records the same events. The check and the append
happen under one lock, so two answers given in one process cannot both land (across
processes the store's transaction refuses an approval of a phase that no longer waits).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from autopack.events import (
    ApprovalGranted,
    ApprovalRejected,
    CancelRequested,
    RunFinished,
    RunPaused,
)
from autopack.states import RUN_TERMINAL, IllegalTransition, PhaseState, RunState

if TYPE_CHECKING:
    from autopack.projection import PhaseView
    from autopack.store import Store

_lock = threading.RLock()


class CommandRefused(IllegalTransition):
    """The run or phase is not in a state the command applies to; the message says why."""


class NotWaiting(CommandRefused):
    """The phase does not wait for a person's answer (or not at the attempt answered)."""


class RunEnded(CommandRefused):
    """The run has already ended."""


def waiting_phase(
    store: Store, run_id: str, phase_id: str, attempt: int | None = None
) -> PhaseView:
    """The phase, which must wait for approval (at ``attempt`` when one is named)."""
    view = store.view(run_id)
    phase = view.phases.get(phase_id)
    if phase is None:
        raise NotWaiting(f"phase {phase_id!r} is not in run {run_id}")
    if phase.state is not PhaseState.AWAITING_APPROVAL:
        raise NotWaiting(
            f"phase {phase_id!r} of {run_id} is {phase.state.value}, not waiting for approval"
        )
    if attempt is not None and attempt != phase.attempt:
        raise NotWaiting(
            f"phase {phase_id!r} of {run_id} waits at attempt {phase.attempt}, not {attempt}"
        )
    return phase


def approve(
    store: Store, run_id: str, phase_id: str, *, by: str, note: str = "", attempt: int | None = None
) -> ApprovalGranted:
    """Let a waiting phase land; its executor commits it."""
    with _lock:
        phase = waiting_phase(store, run_id, phase_id, attempt)
        granted = ApprovalGranted(phase_id=phase_id, attempt=phase.attempt, note=note, by=by)
        store.append(run_id, granted)
    return granted


def reject(
    store: Store,
    run_id: str,
    phase_id: str,
    *,
    by: str,
    note: str,
    fail: bool = False,
    attempt: int | None = None,
) -> ApprovalRejected:
    """Turn a waiting phase down: ``note`` goes to its next attempt, or ``fail`` ends it."""
    with _lock:
        phase = waiting_phase(store, run_id, phase_id, attempt)
        rejected = ApprovalRejected(
            phase_id=phase_id, attempt=phase.attempt, note=note, by=by, fail=fail
        )
        store.append(run_id, rejected)
    return rejected


def request_cancel(store: Store, run_id: str, reason: str) -> RunState:
    """Record a cancel request (once); the run's executor stops at its next safe point.
    Returns the run's state; a run that has ended is refused."""
    with _lock:
        view = store.view(run_id)
        if view.state in RUN_TERMINAL:
            raise RunEnded(f"run {run_id} has already ended ({view.state.value})")
        if not view.cancel_requested:
            store.append(run_id, CancelRequested(reason=reason))
        return store.view(run_id).state


def end_cancelled(store: Store, run_id: str, reason: str) -> RunState:
    """Record a run nobody executes (queued, paused, or whose executor is gone) as
    CANCELLED now; a run that has ended already is left as it is."""
    return _end(store, run_id, RunState.CANCELLED, reason)


def end_failed(store: Store, run_id: str, reason: str) -> RunState:
    """Record a run that can neither go on nor pause (a queued run whose host lost it) as
    FAILED with ``reason``; a run that has ended already is left as it is."""
    return _end(store, run_id, RunState.FAILED, reason)


def _end(store: Store, run_id: str, state: RunState, reason: str) -> RunState:
    with _lock:
        if store.view(run_id).state not in RUN_TERMINAL:
            store.append(run_id, RunFinished(state=state.value, reason=reason))
        return store.view(run_id).state


def cancel(store: Store, run_id: str, reason: str, *, executed: bool) -> RunState:
    """Ask a run to stop. A queued or paused run (``executed`` false: nothing carries it)
    ends at once; a RUNNING one is left to its executor. Returns the state after."""
    with _lock:
        state = request_cancel(store, run_id, reason)
        if not executed and state is not RunState.RUNNING:
            return end_cancelled(store, run_id, reason)
        return state


def pause(store: Store, run_id: str, reason: str) -> RunState:
    """Record a RUNNING run as PAUSED with ``reason`` (its executor stopped: an error, a
    host that could not start it); any other run is left as it is."""
    with _lock:
        if store.view(run_id).state is RunState.RUNNING:
            store.append(run_id, RunPaused(reason=reason))
        return store.view(run_id).state
