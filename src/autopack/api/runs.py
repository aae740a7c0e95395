"""Runs, phases, approvals and the live event stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from autopack.api.auth import OPERATE, READ, Caller
from autopack.api.context import ApiContext
from autopack.api.errors import ApiError, documented
from autopack.api.executor import RunBusy, RunHost
from autopack.api.models import (
    Approval,
    ApproveBody,
    CancelBody,
    PhaseDetail,
    PhaseSummary,
    Progress,
    RejectBody,
    RunAction,
    RunDetail,
    RunList,
)
from autopack.api.stream import EventHub, run_events
from autopack.api.views import (
    attempt_steps,
    evidence,
    phase_summaries,
    phase_summary,
    progress_of,
    run_summary,
)
from autopack.autopilot.intention import IntentionError
from autopack.engine import commands
from autopack.engine.create import RepoProblem, create_run
from autopack.engine.local import LeaseHeld, cancel_orphan
from autopack.llm.selection import missing_models
from autopack.mcp.plans import plan_problem
from autopack.plan import PlanError, PlanIssue, parse_plan_text
from autopack.projection import PhaseView, RunView
from autopack.safeyaml import MAX_BYTES
from autopack.states import IllegalTransition, PhaseState, RunState
from autopack.store import RunExists, Store

PLAN_BYTES_CAP = MAX_BYTES
"""A plan sent to ``/runs/start`` is held to the same size as a plan file."""
PARSES_AT_ONCE = 2
MAX_EVENT_ID = 2**63 - 1
"""Largest sequence number a store can hold (a signed 64-bit integer)."""
router = APIRouter(tags=["runs"], responses=documented(400, 401, 403, 429))


async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def executor(request: Request) -> RunHost | None:
    found: RunHost | None = request.app.state.executor
    return found


Ctx = Annotated[ApiContext, Depends(context)]
Reader = Annotated[Caller, Depends(READ)]
Operator = Annotated[Caller, Depends(OPERATE)]

PLAN_BODY = {
    "requestBody": {
        "required": True,
        "description": "A plan, exactly as a plan file holds it (JSON or YAML).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/runs/start",
    status_code=201,
    response_model=RunAction,
    responses=documented(409, 413, 422, 503),
    openapi_extra=PLAN_BODY,
)
async def start_run(request: Request, ctx: Ctx, caller: Operator) -> RunAction:
    """Validate a plan as a plan file is validated and queue a run for it.

    A server that executes runs refuses (422 ``no_model``) a plan whose Builder or
    Auditor would have no model, rather than accept a run that could only pause."""
    raw = await _capped_body(request, PLAN_BYTES_CAP)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        issue = PlanIssue(file="request", line=0, field="-", message="the body is not UTF-8")
        raise PlanError([issue]) from exc
    async with _parsing(request.app):  # seconds of CPU for a large plan: not on the loop
        plan = await anyio.to_thread.run_sync(parse_plan_text, text, "request")
    problem = plan_problem(plan, ctx.rt.settings)
    if problem:
        raise ApiError(422, "unknown_mcp_server", problem)
    source = f"api ({caller.name})"
    found = executor(request)
    if found is not None:  # it would execute the run now: it must be able to call models
        settings = ctx.rt.settings.models.model_dump()
        missing = missing_models(plan, settings, ctx.config.model_override)
        if missing:
            raise ApiError(422, "no_model", missing)
    try:
        if found is not None:  # a host may clone and push: not on the event loop
            run_id = await anyio.to_thread.run_sync(found.submit, plan, source)
        else:
            run_id = create_run(ctx.rt, plan, plan_source=source)
    except RunExists as exc:
        message = f"a run {exc.args[0]!r} already exists; give the plan another run.id"
        raise ApiError(409, "run_exists", message) from exc
    except RepoProblem as exc:
        raise ApiError(503, "repo_unavailable", str(exc)) from exc
    except IntentionError as exc:  # the repository's own file, not the request, is wrong
        message = "; ".join(str(issue) for issue in exc.issues)
        raise ApiError(503, "invalid_intention", message) from exc
    return RunAction(run_id=run_id, state=RunState.QUEUED.value)


async def _capped_body(request: Request, cap: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass ``cap`` bytes: from its
    declared length, else while it streams in (it is never buffered past the cap)."""
    too_large = ApiError(413, "too_large", f"the body is over the limit of {cap:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parsing(app: Any) -> anyio.CapacityLimiter:
    """At most :data:`PARSES_AT_ONCE` plans parsed at a time, so large plans cannot take
    every worker thread the API's other routes run in."""
    limiter: anyio.CapacityLimiter | None = getattr(app.state, "plan_parsing", None)
    if limiter is None:
        limiter = app.state.plan_parsing = anyio.CapacityLimiter(PARSES_AT_ONCE)
    return limiter


@router.get("/runs", response_model=RunList, responses=documented(422))
def list_runs(
    ctx: Ctx,
    _: Reader,
    state: RunState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunList:
    """Runs, newest first; filter by state, page with limit and offset."""
    store = ctx.rt.store
    total = store.count_runs(state)
    rows = store.list_runs(state, limit=limit, offset=offset)
    return RunList(runs=[run_summary(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunDetail, responses=documented(404))
async def get_run(run_id: str, request: Request, _: Reader) -> Response:
    """A run with its tiers, phases, spend and budget."""
    ctx: ApiContext = request.app.state.ctx
    found = executor(request)
    executing = found is not None and found.executing(run_id)
    body = ctx.run_bodies.body(ctx.rt.store, run_id, executing)
    return Response(body, media_type="application/json")


@router.get("/runs/{run_id}/progress", response_model=Progress, responses=documented(404))
def progress(run_id: str, ctx: Ctx, _: Reader) -> Progress:
    """How far the run is: phases done, what is active, budget used."""
    return progress_of(ctx.rt.store.snapshot(run_id))


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    response_model=RunAction,
    responses=documented(404, 409, 422),
)
def cancel_run(
    run_id: str, request: Request, ctx: Ctx, _: Operator, body: CancelBody | None = None
) -> RunAction:
    """Stop a run at its next safe point (at once when nobody executes it)."""
    reason = (body or CancelBody.model_validate({})).reason
    host = executor(request)
    try:
        if host is not None:
            state = host.cancel(run_id, reason)
        else:
            state = commands.cancel(ctx.rt.store, run_id, reason, executed=False)
            if state is RunState.RUNNING and cancel_orphan(ctx.rt, run_id, reason):
                state = RunState.CANCELLED  # RUNNING, but its executor is gone
    except (RunBusy, IllegalTransition) as exc:
        raise ApiError(409, "run_ended", str(exc)) from exc
    return RunAction(run_id=run_id, state=state.value)


@router.post(
    "/runs/{run_id}/resume",
    status_code=202,
    response_model=RunAction,
    responses=documented(404, 409, 503),
)
def resume_run(run_id: str, request: Request, ctx: Ctx, _: Operator) -> RunAction:
    """Execute a paused, failed or cancelled run again; recorded steps are not redone."""
    ctx.rt.store.view(run_id)
    host = _require_executor(request)
    try:
        host.resume(run_id)
    except (RunBusy, LeaseHeld, IllegalTransition) as exc:
        raise ApiError(409, "run_busy", str(exc)) from exc
    return RunAction(run_id=run_id, state=ctx.rt.store.run(run_id).state)


def _require_executor(request: Request) -> RunHost:
    found = executor(request)
    if found is None:
        raise ApiError(503, "no_executor", "this server runs without an executor")
    return found


@router.get("/runs/{run_id}/phases", response_model=list[PhaseSummary], responses=documented(404))
def list_phases(run_id: str, ctx: Ctx, _: Reader) -> list[PhaseSummary]:
    """Every phase of the run in plan order."""
    return phase_summaries(ctx.rt.store.snapshot(run_id))


@router.get(
    "/runs/{run_id}/phases/{phase_id}",
    response_model=PhaseDetail,
    responses=documented(404, 422),
)
def get_phase(
    run_id: str,
    phase_id: str,
    ctx: Ctx,
    _: Reader,
    attempt: Annotated[int | None, Query(ge=1, le=1000, description="Default: latest.")] = None,
) -> PhaseDetail:
    """A phase's diff, test delta by test name, gate decision and reasons, audit, proof hash."""
    view = ctx.rt.store.view(run_id)
    phase = _phase(view, phase_id)
    recorded = attempt_steps(phase)
    number = attempt or phase.attempt
    if attempt is not None and attempt not in recorded:
        raise ApiError(404, "not_found", f"phase {phase_id!r} has no attempt {attempt}")
    found = recorded.get(number)
    return PhaseDetail(
        run_id=run_id,
        phase=phase_summary(view, phase),
        cached_tokens=phase.spend.cache_read_tokens,
        uncached_tokens=phase.spend.uncached_input_tokens,
        attempts=sorted(recorded),
        evidence=None if found is None else evidence(ctx.rt, run_id, phase_id, number, found),
        approval=phase.approval,
        rejection=phase.rejection,
    )


def _phase(view: RunView, phase_id: str) -> PhaseView:
    if phase_id not in view.phases:
        raise ApiError(404, "not_found", f"run {view.run_id!r} has no phase {phase_id!r}")
    return view.phases[phase_id]


@router.get(
    "/runs/{run_id}/events",
    responses={
        200: {
            "description": "Server-sent events; each id is the event's sequence number.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **documented(404, 422),
    },
    response_model=None,
)
def stream_events(
    run_id: str,
    request: Request,
    ctx: Ctx,
    _: Reader,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_EVENT_ID, description="Like Last-Event-ID, for plain clients.")
    ] = 0,
) -> StreamingResponse:
    """The run's events, then live ones; reconnect with Last-Event-ID to resume exactly."""
    ctx.rt.store.run(run_id)
    hub: EventHub = request.app.state.hub
    hub.attach(ctx.rt.store)
    start = _event_id(last_event_id) if last_event_id is not None else after
    return StreamingResponse(
        run_events(hub, ctx.rt.store, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event_id(header: str) -> int:
    """A ``Last-Event-ID``: the sequence number of an event, so 0 to 2^63-1; anything else
    is refused here, before the stream starts, instead of ending it from the store."""
    value = header.strip()
    if not value.isdecimal() or not value.isascii() or int(value) > MAX_EVENT_ID:
        raise ApiError(
            400, "bad_event_id", f"Last-Event-ID must be a whole number from 0 to {MAX_EVENT_ID}"
        )
    return int(value)


@router.get("/approvals", response_model=list[Approval], tags=["approvals"])
def pending_approvals(ctx: Ctx, _: Reader) -> list[Approval]:
    """Phases waiting for a person, oldest wait first."""
    store = ctx.rt.store
    run_ids = store.awaiting_approval()
    rows = {
        (str(r["run_id"]), str(r["phase_id"])): str(r["updated_at"])
        for run_id in run_ids
        for r in store.phase_rows(run_id)
    }
    waiting: list[Approval] = []
    for run_id in run_ids:
        view = store.view(run_id)
        for phase in view.phases.values():
            if phase.state is PhaseState.AWAITING_APPROVAL:
                spec = view.plan.phase(phase.id)
                waiting.append(
                    Approval(
                        run_id=run_id,
                        phase_id=phase.id,
                        attempt=phase.attempt,
                        goal=spec.goal,
                        risk=spec.risk,
                        reasons=[str(r) for r in phase.steps.get("gate", {}).get("reasons", [])],
                        waiting_since=rows.get((run_id, phase.id), view.updated_at),
                    )
                )
    return sorted(waiting, key=lambda a: a.waiting_since)


APPROVAL_ERRORS = documented(404, 409, 422)


@router.post(
    "/runs/{run_id}/phases/{phase_id}/approve",
    response_model=RunAction,
    responses=APPROVAL_ERRORS,
    tags=["approvals"],
)
def approve(
    run_id: str,
    phase_id: str,
    request: Request,
    ctx: Ctx,
    caller: Operator,
    body: ApproveBody | None = None,
) -> RunAction:
    """Let a waiting phase land; the executor commits it and the run goes on."""
    note = (body or ApproveBody.model_validate({})).note
    return answer_phase(
        ctx,
        executor(request),
        run_id,
        phase_id,
        lambda store: commands.approve(store, run_id, phase_id, by=caller.name, note=note),
    )


@router.post(
    "/runs/{run_id}/phases/{phase_id}/reject",
    response_model=RunAction,
    responses=APPROVAL_ERRORS,
    tags=["approvals"],
)
def reject(
    run_id: str, phase_id: str, body: RejectBody, request: Request, ctx: Ctx, caller: Operator
) -> RunAction:
    """Turn a waiting phase down: the note goes to the next attempt, or ``fail`` ends it."""
    return answer_phase(
        ctx,
        executor(request),
        run_id,
        phase_id,
        lambda store: commands.reject(
            store, run_id, phase_id, by=caller.name, note=body.note, fail=body.fail
        ),
    )


def answer_phase(
    ctx: ApiContext,
    host: RunHost | None,
    run_id: str,
    phase_id: str,
    answer: Callable[[Store], object],
) -> RunAction:
    """Record a person's answer to a waiting phase (the API's and MCP's one path):
    ``answer`` is :func:`autopack.engine.commands.approve` or ``reject`` on the store,
    whose check that the phase waits and append are one step."""
    store = ctx.rt.store
    _phase(store.view(run_id), phase_id)  # 404 for a phase the run does not have
    try:
        answer(store)
    except IllegalTransition as exc:
        raise ApiError(409, "not_waiting", str(exc)) from exc
    if host is not None:
        host.answered(run_id)
    view = store.view(run_id)
    return RunAction(
        run_id=run_id,
        state=view.state.value,
        phase_id=phase_id,
        phase_state=view.phases[phase_id].state.value,
    )
