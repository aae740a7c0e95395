"""Autopack as an MCP server: its runs and its memory as tools and resources for any agent.

One :class:`~mcp.server.mcpserver.MCPServer` serves both transports (stdio for a local
agent, Streamable HTTP inside ``autopack serve``). Every tool is a thin call of what the
HTTP API does for the same question (the same views, the same approval path, the same
memory service), so an agent and the dashboard never see two versions of a run.

Who may do what is the caller's scope (``read`` < ``operate`` < ``admin``), exactly as
for API keys: over HTTP the key's, over stdio the one ``autopack mcp --scope`` was given.
A refusal, an unknown run or a bad plan is a tool error (``isError``) whose text starts
with a stable code (``forbidden:``, ``not_found:``, ``invalid_plan:`` ...) and says what
to do instead, so a model can act on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, NoReturn, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel, Field

from autopack import __version__
from autopack.api import knowledge, runs
from autopack.api.auth import Caller
from autopack.api.context import ApiContext
from autopack.api.errors import ApiError
from autopack.api.executor import RunHost
from autopack.api.models import (
    MemoryResults,
    PhaseDetail,
    RunAction,
    RunDetail,
    RunList,
)
from autopack.engine import commands
from autopack.engine.create import RepoProblem, create_run
from autopack.ledger import SummaryError, load_run_summaries, read_ledgers
from autopack.ledger.tidy import README, SUMMARY_END, SUMMARY_START, render_summary_block
from autopack.llm.selection import missing_models
from autopack.mcp.plans import plan_problem
from autopack.plan import PlanError, PlanIssue, parse_plan_text
from autopack.safeyaml import MAX_BYTES
from autopack.states import RunState
from autopack.store import RunExists, RunNotFound

T = TypeVar("T")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
"""A run id that names a folder under ``runs/`` (never ``..``)."""
EVIDENCE_DIFF_CAP = 20_000
"""A phase's diff as a tool result is cut here: an agent's context is smaller than the
dashboard's screen (``autopack show`` or the API has the whole diff)."""
INSTRUCTIONS = """Autopack runs plans (tiers of phases) against this git repository: per phase a
Builder edits an isolated worktree, an Auditor reviews, a deterministic gate decides.
Its ledgers (builds, debug entries, decisions) are the project's memory: search them
with memory_search before changing code, read an entry with autopack://ledger/{id}.
Check a plan with plan_check before run_start; follow a run with run_status and
phase_evidence. approve and reject answer a phase that waits for a person."""

RunId = Annotated[str, Field(min_length=1, max_length=200, description="A run's id.")]
PhaseId = Annotated[str, Field(min_length=1, max_length=200, description="A phase's id.")]
PlanText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_BYTES,
        description="The plan, exactly as a plan file holds it (YAML or JSON).",
    ),
]


@dataclass(frozen=True)
class Access:
    """What the tools need: the API's context, the run host (if this process executes
    runs) and who is calling (from the transport)."""

    ctx: ApiContext
    host: Callable[[], RunHost | None]
    caller: Callable[[Context], Caller]


class PlanCheck(BaseModel):
    """The outcome of checking a plan: valid, or every problem with its line and field."""

    valid: bool
    run_id: str = Field(default="", description="The plan's run.id, if it names one.")
    tiers: int = 0
    phases: int = 0
    issues: list[PlanIssue] = Field(default_factory=list)


class RuleView(BaseModel):
    """A learned rule: a failure met in several runs and the fix that resolved it."""

    id: str
    status: str = Field(description="candidate, promoted (injected into prompts) or retired.")
    signature: str
    fix_kind: str
    fix: str
    runs: list[str]
    scope: list[str]
    saved: bool = Field(description="False: found just now; `autopack rules list` records it.")


class RuleList(BaseModel):
    rules: list[RuleView]


def build_server(access: Access) -> MCPServer:
    """The MCP server over ``access``; the same object serves stdio and HTTP."""
    server = MCPServer(
        "autopack",
        title="Autopack",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    _run_tools(server, access)
    _approval_tools(server, access)
    _memory_tools(server, access)
    _resources(server, access)
    return server


def require(access: Access, context: Context, scope: str) -> Caller:
    """The caller, when their scope allows ``scope``; a ``forbidden`` tool error otherwise."""
    caller = access.caller(context)
    if not caller.allows(scope):
        fail(
            "forbidden",
            f"this needs scope {scope!r}; this connection has {caller.scope!r} (an API key"
            f" with scope {scope!r}, or `autopack mcp --scope {scope}` for a local agent)",
        )
    return caller


def fail(code: str, message: str) -> NoReturn:
    raise ToolError(f"{code}: {message}")


def _api(call: Callable[[], T]) -> T:
    """Run an API-level call; its refusals become tool errors with the API's codes."""
    try:
        return call()
    except ApiError as exc:
        fail(exc.code, exc.message)
    except RunNotFound as exc:
        fail("not_found", f"no run {exc.args[0]!r} (runs_list shows the runs)")


def _run_tools(server: MCPServer, access: Access) -> None:
    ctx = access.ctx

    @server.tool()
    def plan_check(plan: PlanText, context: Context) -> PlanCheck:
        """Validate a plan as `autopack plan check` does; every problem has a line and field."""
        require(access, context, "read")
        try:
            parsed = parse_plan_text(plan, "plan")
        except PlanError as exc:
            return PlanCheck(valid=False, issues=exc.issues)
        phases = sum(1 for _ in parsed.phases())
        return PlanCheck(
            valid=True, run_id=parsed.run.id or "", tiers=len(parsed.tiers), phases=phases
        )

    @server.tool()
    def run_start(plan: PlanText, context: Context) -> RunAction:
        """Queue a run of a plan (checked as plan_check does); needs scope operate."""
        caller = require(access, context, "operate")
        try:
            parsed = parse_plan_text(plan, "plan")
        except PlanError as exc:
            lines = "; ".join(str(issue) for issue in exc.issues[:20])
            fail("invalid_plan", f"{len(exc.issues)} problem(s): {lines} (plan_check lists them)")
        problem = plan_problem(parsed, ctx.rt.settings)
        if problem:
            fail("unknown_mcp_server", problem)
        source = f"mcp ({caller.name})"
        host = access.host()
        if host is not None:  # it would execute the run now: it must be able to call models
            settings = ctx.rt.settings.models.model_dump()
            missing = missing_models(parsed, settings, ctx.config.model_override)
            if missing:
                fail("no_model", missing)
        try:
            run_id = (
                host.submit(parsed, source)
                if host
                else create_run(ctx.rt, parsed, plan_source=source)
            )
        except RunExists as exc:
            fail("run_exists", f"a run {exc.args[0]!r} exists; give the plan another run.id")
        except RepoProblem as exc:
            fail("repo_unavailable", str(exc))
        return RunAction(run_id=run_id, state=RunState.QUEUED.value)

    @server.tool()
    def runs_list(
        context: Context,
        state: RunState | None = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 20,
    ) -> RunList:
        """Runs, newest first, with progress and spend; filter by state."""
        caller = require(access, context, "read")
        return runs.list_runs(ctx, caller, state=state, limit=limit, offset=0)

    @server.tool()
    def run_status(run_id: RunId, context: Context) -> RunDetail:
        """A run's state, tiers and phases (state, attempt, gate decision), spend and budget."""
        require(access, context, "read")
        host = access.host()
        executing = host is not None and host.executing(run_id)
        # the API's body for GET /runs/{id}, kept while the run has no new event
        body = _api(lambda: ctx.run_bodies.body(ctx.rt.store, run_id, executing))
        return RunDetail.model_validate_json(body)

    @server.tool()
    def phase_evidence(
        run_id: RunId,
        phase_id: PhaseId,
        context: Context,
        attempt: Annotated[int | None, Field(ge=1, le=1000, description="Default: latest.")] = None,
    ) -> PhaseDetail:
        """A phase's evidence: diff, test delta by test name, audit, gate decision and reasons."""
        caller = require(access, context, "read")
        detail = _api(lambda: runs.get_phase(run_id, phase_id, ctx, caller, attempt=attempt))
        found = detail.evidence
        if found is not None and len(found.diff) > EVIDENCE_DIFF_CAP:
            cut = found.diff[:EVIDENCE_DIFF_CAP]
            found.diff = f"{cut}\n... (cut; `autopack show {run_id} {phase_id}` has all of it)\n"
        return detail


def _approval_tools(server: MCPServer, access: Access) -> None:
    ctx = access.ctx

    @server.tool()
    def approve(
        run_id: RunId,
        phase_id: PhaseId,
        context: Context,
        note: Annotated[str, Field(max_length=4000)] = "",
    ) -> RunAction:
        """Let a phase that waits for a person land; needs scope operate."""
        caller = require(access, context, "operate")
        return _api(
            lambda: runs.answer_phase(
                ctx,
                access.host(),
                run_id,
                phase_id,
                lambda store: commands.approve(store, run_id, phase_id, by=caller.name, note=note),
            )
        )

    @server.tool()
    def reject(
        run_id: RunId,
        phase_id: PhaseId,
        note: Annotated[str, Field(min_length=1, max_length=4000, description="Why.")],
        context: Context,
        fail_phase: Annotated[bool, Field(description="End the phase, no retry.")] = False,
    ) -> RunAction:
        """Turn a waiting phase down: the note goes to its next attempt; needs scope operate."""
        caller = require(access, context, "operate")
        return _api(
            lambda: runs.answer_phase(
                ctx,
                access.host(),
                run_id,
                phase_id,
                lambda store: commands.reject(
                    store, run_id, phase_id, by=caller.name, note=note, fail=fail_phase
                ),
            )
        )


def _memory_tools(server: MCPServer, access: Access) -> None:
    ctx = access.ctx

    @server.tool()
    def memory_search(
        query: Annotated[str, Field(min_length=1, max_length=2000)],
        context: Context,
        k: Annotated[int, Field(ge=1, le=50)] = 5,
        mode: Literal["hybrid", "keyword", "dense"] = "hybrid",
    ) -> MemoryResults:
        """Search the project's memory (ledgers, debug fixes, past phases); each hit has its
        source and id (read a ledger entry whole with autopack://ledger/{id})."""
        caller = require(access, context, "read")
        return _api(lambda: knowledge.memory_search(ctx, caller, q=query, k=k, mode=mode))

    @server.tool()
    def rules_list(context: Context) -> RuleList:
        """Learned rules (a failure fixed the same way in several runs) and their status."""
        require(access, context, "read")
        from autopack.memory.rules import RuleBook, RuleError

        try:
            book = RuleBook.load(ctx.rt.repo)
            saved = set(book.rules)
            book.refresh(load_run_summaries(ctx.rt.repo))  # shown, not written: read scope
        except (RuleError, SummaryError) as exc:
            fail("unreadable", str(exc))
        return RuleList(
            rules=[
                RuleView(**{**asdict(rule), "saved": rule.id in saved})
                for rule in book.rules.values()
            ]
        )


def _resources(server: MCPServer, access: Access) -> None:
    """Resources need scope read, which every key has: over HTTP a request without a valid
    key never reaches them."""
    ctx = access.ctx

    @server.resource(
        "autopack://ledger/{entry_id}",
        name="ledger-entry",
        description="A ledger entry by id (BUILD-001, DBG-012, DEC-003): heading and fields.",
        mime_type="text/markdown",
    )
    def ledger_entry(entry_id: str) -> str:
        for ledger in read_ledgers(ctx.rt.repo).values():
            for entry in ledger.entries:
                if entry.id == entry_id:
                    return f"## {entry.id} | {entry.date} | {entry.title}\n{entry.body}"
        raise MCPError(
            INVALID_PARAMS,
            f"not_found: no ledger entry {entry_id!r} (memory_search finds entries by topic)",
        )

    @server.resource(
        "autopack://readme-summary",
        name="readme-summary",
        description="The README's summary of the ledgers: builds, latest build, decisions.",
        mime_type="text/markdown",
    )
    def readme_summary() -> str:
        path = ctx.rt.repo / README
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        start, end = text.find(SUMMARY_START), text.find(SUMMARY_END)
        if start != -1 and end > start:
            return text[start + len(SUMMARY_START) : end].strip() + "\n"
        return render_summary_block(read_ledgers(ctx.rt.repo))

    @server.resource(
        "autopack://runs/{run_id}/summary",
        name="run-summary",
        description="An ended run's summary: phases, attempts, decisions, commits, test delta.",
        mime_type="application/json",
    )
    def run_summary_resource(run_id: str) -> str:
        path = ctx.rt.run_dir(run_id) / "summary.json"
        if SAFE_ID.match(run_id) and path.is_file():
            return path.read_text(encoding="utf-8")
        try:
            state = ctx.rt.store.run(run_id).state
        except RunNotFound as exc:
            raise MCPError(INVALID_PARAMS, f"not_found: no run {run_id!r}") from exc
        raise MCPError(
            INVALID_PARAMS,
            f"not_ended: run {run_id!r} is {state} and has no summary yet (run_status"
            " shows where it is)",
        )
