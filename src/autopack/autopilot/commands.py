"""What answers an autopilot from outside its loop: approve or reject its plan, stop it.

As :mod:`autopack.engine.commands` is for runs, these are the only functions that write a
plan's approval or rejection or a stop request into an autopilot's log; the CLI, the HTTP
API (and so the dashboard) and the loop itself (approval by policy) call them. The check
and the append happen in the store's transaction (the projection refuses a plan that no
longer waits), so two answers, from any processes, cannot both land.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autopack.autopilot_projection import AWAITING_APPROVAL, STOPPED, AutopilotView
from autopack.events import AutopilotStopRequested, PlanApproved, PlanRejected
from autopack.states import IllegalTransition

if TYPE_CHECKING:
    from autopack.store import Store


class AutopilotRefused(IllegalTransition):
    """The autopilot is not in a state the command applies to; the message says why."""


def _waiting(store: Store, autopilot_id: str) -> int:
    """The iteration whose plan waits for a person."""
    view = store.autopilots.view(autopilot_id)
    current = view.current
    if view.state != AWAITING_APPROVAL or current is None:
        why = f"stopped: {view.stop_reason}" if view.state == STOPPED else "running"
        raise AutopilotRefused(f"autopilot {autopilot_id} has no plan waiting for approval ({why})")
    return current.number


def approve_plan(store: Store, autopilot_id: str, *, by: str, note: str = "") -> int:
    """Let the waiting plan run; the iteration's number."""
    number = _waiting(store, autopilot_id)
    _append(store, autopilot_id, PlanApproved(iteration=number, by=by, note=note))
    return number


def reject_plan(store: Store, autopilot_id: str, *, by: str, note: str) -> int:
    """Turn the waiting plan down (the autopilot stops); the iteration's number."""
    if not note.strip():
        raise AutopilotRefused("a rejection needs a note saying why")
    number = _waiting(store, autopilot_id)
    _append(store, autopilot_id, PlanRejected(iteration=number, by=by, note=note))
    return number


def approve_by_policy(store: Store, autopilot_id: str, iteration: int) -> None:
    """The loop's own approval of a plan the policy allows (low risk, allowed paths)."""
    _append(store, autopilot_id, PlanApproved(iteration=iteration, by="policy", auto=True))


def request_stop(store: Store, autopilot_id: str, *, by: str) -> AutopilotView:
    """Ask the autopilot to stop at its next safe point (between steps, or while it
    waits for a plan's approval); an autopilot that has stopped is refused."""
    view = store.autopilots.view(autopilot_id)
    if view.state == STOPPED:
        raise AutopilotRefused(f"autopilot {autopilot_id} has stopped: {view.stop_reason}")
    return _append(store, autopilot_id, AutopilotStopRequested(by=by))


def _append(
    store: Store, autopilot_id: str, payload: PlanApproved | PlanRejected | AutopilotStopRequested
) -> AutopilotView:
    try:
        return store.autopilots.append(autopilot_id, payload)
    except AutopilotRefused:
        raise
    except IllegalTransition as exc:  # another answer landed between the check and this
        raise AutopilotRefused(str(exc)) from exc
