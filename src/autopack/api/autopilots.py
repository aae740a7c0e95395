"""Autopilots: list them, show one's iterations, answer its plan, stop it.

The reads need a ``read`` key, the answers an ``operate`` key (as for run approvals);
the answers go through :mod:`autopack.autopilot.commands`, like the CLI's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import APIRouter, Query

from autopack.api.errors import ApiError, documented
from autopack.api.models import (
    ApproveBody,
    AutopilotAction,
    AutopilotDetail,
    AutopilotList,
    AutopilotSummary,
    PlanRejectBody,
)
from autopack.api.runs import Ctx, Operator, Reader
from autopack.autopilot import commands
from autopack.autopilot.commands import AutopilotRefused
from autopack.autopilot_projection import AutopilotView, autopilot_dict
from autopack.store import Store
from autopack.store.autopilots import AutopilotNotFound

router = APIRouter(tags=["autopilots"], responses=documented(400, 401, 403, 429))
ANSWER_ERRORS = documented(404, 409, 422)


@router.get("/autopilots", response_model=AutopilotList)
def list_autopilots(ctx: Ctx, _: Reader, limit: int = Query(50, ge=1, le=500)) -> AutopilotList:
    """The autopilots, newest first."""
    store = ctx.rt.store
    rows = store.autopilots.list(limit=limit)
    found = [_view(store, str(row["id"])) for row in rows]
    return AutopilotList(
        autopilots=[AutopilotSummary(**autopilot_dict(v, iterations=False)) for v in found]
    )


@router.get("/autopilots/{autopilot_id}", response_model=AutopilotDetail, responses=documented(404))
def get_autopilot(autopilot_id: str, ctx: Ctx, _: Reader) -> AutopilotDetail:
    """One autopilot with its iterations (each links to its run)."""
    return AutopilotDetail(**autopilot_dict(_view(ctx.rt.store, autopilot_id)))


@router.post(
    "/autopilots/{autopilot_id}/approve", response_model=AutopilotAction, responses=ANSWER_ERRORS
)
def approve_plan(
    autopilot_id: str, ctx: Ctx, caller: Operator, body: ApproveBody | None = None
) -> AutopilotAction:
    """Let the plan that waits for a person run."""
    note = (body or ApproveBody.model_validate({})).note
    return _answer(
        ctx.rt.store,
        autopilot_id,
        lambda store: commands.approve_plan(store, autopilot_id, by=caller.name, note=note),
    )


@router.post(
    "/autopilots/{autopilot_id}/reject", response_model=AutopilotAction, responses=ANSWER_ERRORS
)
def reject_plan(
    autopilot_id: str, body: PlanRejectBody, ctx: Ctx, caller: Operator
) -> AutopilotAction:
    """Turn the waiting plan down with a note; the autopilot stops."""
    return _answer(
        ctx.rt.store,
        autopilot_id,
        lambda store: commands.reject_plan(store, autopilot_id, by=caller.name, note=body.note),
    )


@router.post(
    "/autopilots/{autopilot_id}/stop", response_model=AutopilotAction, responses=ANSWER_ERRORS
)
def stop(autopilot_id: str, ctx: Ctx, caller: Operator) -> AutopilotAction:
    """Ask the autopilot to stop at its next safe point."""
    return _answer(
        ctx.rt.store,
        autopilot_id,
        lambda store: commands.request_stop(store, autopilot_id, by=caller.name),
    )


def _view(store: Store, autopilot_id: str) -> AutopilotView:
    if not re.fullmatch(r"[0-9a-f]{8}", autopilot_id):
        raise ApiError(404, "not_found", f"no autopilot {autopilot_id!r}")
    try:
        return store.autopilots.view(autopilot_id)
    except AutopilotNotFound:
        raise ApiError(404, "not_found", f"no autopilot {autopilot_id!r}") from None


def _answer(store: Store, autopilot_id: str, answer: Callable[[Store], object]) -> AutopilotAction:
    _view(store, autopilot_id)
    try:
        answer(store)
    except AutopilotRefused as exc:
        raise ApiError(409, "not_waiting", str(exc)) from exc
    view = store.autopilots.view(autopilot_id)
    current = view.current
    return AutopilotAction(
        id=autopilot_id, state=view.state, iteration=current.number if current else None
    )
