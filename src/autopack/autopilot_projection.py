"""An autopilot's state as a pure fold over its event log.

The store applies :func:`apply_autopilot` in the transaction of each append (so an event
the autopilot's state does not allow, such as a second answer to one plan, is refused and
nothing is written); the loop, the CLI, the API and the dashboard read the
:class:`AutopilotView` it produces. Like :mod:`autopack.projection`, for runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from autopack.events import (
    AutopilotEvent,
    AutopilotStarted,
    AutopilotStopped,
    AutopilotStopRequested,
    IterationBegan,
    IterationEnded,
    IterationRunFinished,
    PlanApprovalRequested,
    PlanApproved,
    PlanDrafted,
    PlanRejected,
)
from autopack.states import IllegalTransition

RUNNING = "RUNNING"
AWAITING_APPROVAL = "AWAITING_APPROVAL"
STOPPED = "STOPPED"


@dataclass
class IterationView:
    """One iteration: its scan, plan, approval, run and result."""

    number: int
    tip: str
    gaps: int
    counts: dict[str, int]
    keys: list[list[str]]
    began_at: str = ""
    plan: dict[str, Any] | None = None
    plan_digest: str = ""
    plan_path: str = ""
    run_id: str = ""
    approval: str = ""
    """"" (not asked yet), "waiting", "approved" or "rejected"."""
    reasons: list[str] = field(default_factory=list)
    """Why the policy did not approve the plan."""
    decided_by: str = ""
    decided_at: str = ""
    auto: bool = False
    note: str = ""
    run_state: str = ""
    planner_spend: tuple[int, float, int] = (0, 0.0, 0)
    run_spend: tuple[int, float, int] = (0, 0.0, 0)
    """Tokens, cost and model calls of the Planner's calls and of the run (its total as
    last recorded: a run resumed after waiting for a person is recorded again)."""
    ended: bool = False
    landed: bool = False
    closed: int = 0
    tip_after: str = ""
    gaps_after: int = 0
    keys_after: list[list[str]] = field(default_factory=list)
    detail: str = ""

    @property
    def tokens(self) -> int:
        return self.planner_spend[0] + self.run_spend[0]

    @property
    def cost_usd(self) -> float:
        return round(self.planner_spend[1] + self.run_spend[1], 6)

    @property
    def model_calls(self) -> int:
        return self.planner_spend[2] + self.run_spend[2]


@dataclass
class AutopilotView:
    """The projected state of one autopilot."""

    autopilot_id: str
    started: AutopilotStarted
    created_at: str = ""
    updated_at: str = ""
    last_seq: int = 0
    iterations: list[IterationView] = field(default_factory=list)
    stop_requested_by: str = ""
    stop_reason: str = ""
    stop_detail: str = ""

    @property
    def state(self) -> str:
        if self.stop_reason:
            return STOPPED
        current = self.current
        if current is not None and current.approval == "waiting":
            return AWAITING_APPROVAL
        return RUNNING

    @property
    def current(self) -> IterationView | None:
        return self.iterations[-1] if self.iterations else None

    def iteration(self, number: int) -> IterationView:
        current = self.current
        if current is None or current.number != number:
            raise IllegalTransition(f"autopilot {self.autopilot_id} is not in iteration {number}")
        return current

    @property
    def tokens(self) -> int:
        return sum(i.tokens for i in self.iterations)

    @property
    def cost_usd(self) -> float:
        return round(sum(i.cost_usd for i in self.iterations), 6)

    @property
    def model_calls(self) -> int:
        return sum(i.model_calls for i in self.iterations)

    @property
    def runs(self) -> list[str]:
        return [i.run_id for i in self.iterations if i.approval == "approved"]


def fold_autopilot(events: Iterable[AutopilotEvent]) -> AutopilotView:
    """Project a whole autopilot log; raises ``ValueError`` when it does not start one."""
    view: AutopilotView | None = None
    for event in events:
        view = apply_autopilot(view, event)
    if view is None:
        raise ValueError("an autopilot log must start with autopilot_started")
    return view


def apply_autopilot(view: AutopilotView | None, event: AutopilotEvent) -> AutopilotView:
    """Apply one event in place (a new view for the first); refuses an illegal one."""
    payload = event.payload()
    if view is None:
        if not isinstance(payload, AutopilotStarted):
            raise ValueError(f"an autopilot log starts with autopilot_started, not {event.type}")
        return AutopilotView(event.autopilot_id, payload, event.ts, event.ts, event.seq)
    if view.stop_reason:
        raise IllegalTransition(f"autopilot {view.autopilot_id} has stopped ({view.stop_reason})")
    _apply(view, payload, event.ts)
    view.last_seq, view.updated_at = event.seq, event.ts
    return view


def _apply(view: AutopilotView, payload: Any, ts: str) -> None:
    if isinstance(payload, IterationBegan):
        current = view.current
        if current is not None and not current.ended:
            raise IllegalTransition(f"iteration {current.number} has not ended")
        view.iterations.append(
            IterationView(
                payload.iteration, payload.tip, payload.gaps, payload.counts, payload.keys, ts
            )
        )
    elif isinstance(payload, PlanDrafted):
        it = view.iteration(payload.iteration)
        it.plan, it.plan_digest, it.plan_path = payload.plan, payload.plan_digest, payload.plan_path
        it.run_id = payload.run_id
        it.planner_spend = (payload.tokens, payload.cost_usd, payload.model_calls)
    elif isinstance(payload, PlanApprovalRequested):
        it = view.iteration(payload.iteration)
        it.approval, it.reasons = "waiting", payload.reasons
    elif isinstance(payload, PlanApproved | PlanRejected):
        _decide(view, payload, ts)
    elif isinstance(payload, IterationRunFinished):
        it = view.iteration(payload.iteration)
        it.run_state = payload.state
        it.run_spend = (payload.tokens, payload.cost_usd, payload.model_calls)
    elif isinstance(payload, IterationEnded):
        it = view.iteration(payload.iteration)
        it.ended, it.landed, it.closed = True, payload.landed, payload.closed
        it.detail = payload.detail
        it.tip_after, it.gaps_after, it.keys_after = payload.tip, payload.gaps, payload.keys
    elif isinstance(payload, AutopilotStopRequested):
        view.stop_requested_by = view.stop_requested_by or payload.by
    elif isinstance(payload, AutopilotStopped):
        view.stop_reason, view.stop_detail = payload.reason, payload.detail


def _decide(view: AutopilotView, payload: PlanApproved | PlanRejected, ts: str) -> None:
    it = view.iteration(payload.iteration)
    auto = isinstance(payload, PlanApproved) and payload.auto
    if it.plan is None:
        raise IllegalTransition(f"iteration {it.number} has no plan to decide on")
    if it.approval not in (("",) if auto else ("waiting",)):
        state = it.approval or "not waiting for a person"
        raise IllegalTransition(
            f"the plan of autopilot {view.autopilot_id} iteration {it.number} is {state}"
        )
    it.approval = "approved" if isinstance(payload, PlanApproved) else "rejected"
    it.decided_by, it.decided_at, it.note, it.auto = payload.by, ts, payload.note, auto


def iteration_dict(it: IterationView) -> dict[str, Any]:
    """One iteration as the CLI's ``--json`` and the API show it."""
    return {
        "iteration": it.number,
        "began_at": it.began_at,
        "tip": it.tip,
        "gaps": it.gaps,
        "counts": it.counts,
        "plan_path": it.plan_path,
        "plan_digest": it.plan_digest,
        "run_id": it.run_id,
        "approval": it.approval,
        "reasons": it.reasons,
        "decided_by": it.decided_by,
        "decided_at": it.decided_at,
        "auto_approved": it.auto,
        "note": it.note,
        "run_state": it.run_state,
        "tokens": it.tokens,
        "cost_usd": it.cost_usd,
        "model_calls": it.model_calls,
        "ended": it.ended,
        "landed": it.landed,
        "closed": it.closed,
        "tip_after": it.tip_after,
        "gaps_after": it.gaps_after,
        "detail": it.detail,
    }


def autopilot_dict(view: AutopilotView, *, iterations: bool = True) -> dict[str, Any]:
    """An autopilot as the CLI's ``--json`` and the API show it."""
    started = view.started
    found: dict[str, Any] = {
        "id": view.autopilot_id,
        "state": view.state,
        "branch": started.branch,
        "base_commit": started.base_commit,
        "intention_source": started.intention_source,
        "intention_digest": started.intention_digest,
        "budget": started.budget,
        "max_iterations": started.iterations,
        "auto_approve": started.auto_approve,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "stop_requested_by": view.stop_requested_by,
        "stop_reason": view.stop_reason,
        "stop_detail": view.stop_detail,
        "tokens": view.tokens,
        "cost_usd": view.cost_usd,
        "model_calls": view.model_calls,
        "runs": view.runs,
        "iteration_count": len(view.iterations),
    }
    if iterations:
        found["iterations"] = [iteration_dict(it) for it in view.iterations]
    return found
