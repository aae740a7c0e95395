"""Commands of the ``autopack`` CLI. Each one is thin: it parses, calls the engine, prints."""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from autopack.cli import output
from autopack.states import RunState
from autopack.workspace import git

if TYPE_CHECKING:  # the rest is imported by the commands that use it: a cold start is short
    from autopack.config import Settings
    from autopack.engine.runtime import Runtime
    from autopack.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT = {RunState.SUCCEEDED: 0, RunState.FAILED: 1, RunState.CANCELLED: 130}

RepoOption = Annotated[Path, typer.Option("--repo", "-C", help="The target git repository.")]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Model for every role, e.g. scripted:PATH.")
]


def fails_cleanly(func: F) -> F:
    """Turn known failures into a one-line message and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            plan_error = _is(exc, "autopack.plan", "PlanError")
            if plan_error or _is(exc, "autopack.autopilot.intention", "IntentionError"):
                issues = exc.issues  # type: ignore[attr-defined]
                what = "invalid plan" if plan_error else "invalid intention"
                output.err.print(output.labelled(what, f"({len(issues)} problem(s)):"))
                for issue in issues:
                    output.err.print(f"  {issue}")
                raise typer.Exit(2) from exc
            code, label = _failure(exc)
            if code is None:
                raise
            output.err.print(output.labelled(label, _message(exc)))
            raise typer.Exit(code) from exc

    return wrapper  # type: ignore[return-value]


KNOWN_FAILURES: list[tuple[int, str, str, tuple[str, ...]]] = [
    (2, "error:", "autopack.config", ("ConfigError",)),
    (2, "error:", "autopack.engine.create", ("RepoProblem",)),
    (2, "error:", "autopack.store", ("RunExists", "RunNotFound")),
    (1, "refused:", "autopack.engine.local", ("LeaseHeld",)),
    (3, "environment:", "autopack.engine.attempts", ("EnvironmentProblem",)),
    (3, "environment:", "autopack.workspace.git", ("GitError",)),
    (3, "environment:", "autopack.llm.errors", ("ModelError",)),
    (2, "error:", "autopack.forge.publish", ("NoBranch",)),
    (3, "refused:", "autopack.forge.clients", ("ForgeRefused",)),
    (3, "environment:", "autopack.forge.clients", ("ForgeProblem",)),
]
"""Exit code and label of each failure a command reports in one line, by the module
that defines it (a failure of a module never imported cannot have been raised)."""


def _is(exc: Exception, module: str, *names: str) -> bool:
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names))


def _failure(exc: Exception) -> tuple[int | None, str]:
    for code, label, module, names in KNOWN_FAILURES:
        if _is(exc, module, *names):
            return code, label
    return None, ""


def _message(exc: Exception) -> str:
    if _is(exc, "autopack.store", "RunNotFound"):
        return f"no run {exc.args[0]!r} in this repository (see `autopack runs`)"
    if _is(exc, "autopack.store", "RunExists"):
        return f"a run {exc.args[0]!r} already exists; give the plan another run.id"
    return str(exc)


class PlanGroup(TyperGroup):
    """``autopack plan GOAL`` drafts a plan; ``autopack plan check PLAN`` validates one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["draft", *args]
        return super().parse_args(ctx, args)


ROOM_COMMANDS: dict[str, tuple[str, str, str]] = {
    "tidy": (
        "autopack.ledger.cli",
        "tidy_command",
        "Turn ended runs into ledger entries and refresh README summary and docs/INDEX.md.",
    ),
    "worker": (
        "autopack.engine.worker",
        "worker",
        "Carry out distributed runs' steps from a Temporal task queue until stopped.",
    ),
    "doctor": (
        "autopack.ci.cli",
        "doctor",
        "Check what a run needs; print each problem with its fix.",
    ),
    "verify-proof": (
        "autopack.ci.cli",
        "verify_proof",
        "Check that each commit of a run branch matches its proof.",
    ),
    "edits": ("autopack.edits.cli", "edits_app", "Apply edits exactly or not at all."),
    "memory": (
        "autopack.memory.cli",
        "memory_cli",
        "The memory: index ledgers and runs, search them.",
    ),
    "rules": (
        "autopack.memory.cli",
        "rules_cli",
        "Learned rules: failures fixed the same way in several runs.",
    ),
    "keys": ("autopack.api.cli", "keys_app", "API keys for the HTTP API and the dashboard."),
    "mcp": (
        "autopack.mcp.cli",
        "mcp_command",
        "Serve Autopack over MCP on stdin/stdout, for a local agent.",
    ),
    "ci": ("autopack.ci.cli", "ci_app", "The CI contract of a repository Autopack builds."),
    "intention": (
        "autopack.cli.autopilot",
        "intention_app",
        "The project's intention (.autopack/intention.yaml): north star, criteria, constraints.",
    ),
    "gaps": (
        "autopack.cli.autopilot",
        "gaps_command",
        "Find what is missing or broken at HEAD, without a model.",
    ),
    "pr": (
        "autopack.forge.cli",
        "pr_command",
        "Open or update the pull request (GitHub) or merge request (GitLab) of a run.",
    ),
    "autopilot": (
        "autopack.cli.autopilot",
        "autopilot_app",
        "Close the gaps: scan, plan for the top gaps, approve by policy, run, scan again.",
    ),
}
"""Commands whose code lives with the room they drive: name -> (module, attribute, the
start of its help, shown in ``autopack --help``). Loaded only when one of them runs."""


class RootGroup(TyperGroup):
    """The ``autopack`` command. The rooms' commands (:data:`ROOM_COMMANDS`) are imported
    when one of them runs, so every other command starts without FastAPI, Alembic,
    SQLAlchemy or the engine; ``--help`` lists them from the table."""

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in ROOM_COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in ROOM_COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self.listing:
            return TyperCommand(cmd_name, help=ROOM_COMMANDS[cmd_name][2])
        self.commands[cmd_name] = room_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def room_command(name: str) -> Any:
    """The command (a Typer group or command) of a room's Typer app or function."""
    import importlib

    module, attribute, _ = ROOM_COMMANDS[name]
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        command: Any = typer.main.get_group(found)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


app = typer.Typer(
    name="autopack",
    cls=RootGroup,
    help="Autonomous builds: plans run phase by phase through Builder, Auditor and Quality Gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
PLAN_HELP = """Check or draft plans.

autopack plan "GOAL" [--out plan.yaml] [--model SPEC]: the Planner drafts a
plan for GOAL from the repository and writes it for you to review (it never runs it).

autopack plan check PLAN: validate a plan; exit 2 naming file, line and field."""
plan_app = typer.Typer(cls=PlanGroup, help=PLAN_HELP, no_args_is_help=True)
app.add_typer(plan_app, name="plan")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        output.console.print(f"autopack {version('autopack')}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Autonomous builds: plans run phase by phase through Builder, Auditor and Quality Gate."""


def _repo(repo: Path) -> Path:
    """The top of the work tree ``repo`` is in, as git's trusted discovery finds it."""
    repo = repo.resolve()
    where = git.locate(repo)
    if where is None or where.work_tree is None:
        _problem(f"{repo} is not a git repository")
    return where.work_tree


def _problem(message: str) -> NoReturn:
    """Bad input about the repository or a run: exit 2 with ``message``."""
    from autopack.engine.create import RepoProblem

    raise RepoProblem(message)


def _open(root: Path, model: str | None = None) -> Runtime:
    from autopack.engine.runtime import Runtime

    return Runtime.open(root, model_override=model)


def _check_model(spec: str | None, root: Path) -> None:
    """Resolve a --model spec before anything is written, so a typo exits 2 cleanly.

    The spec is resolved with the repository's ``[models]`` settings, as the run will
    resolve it: a provider configured there (``[models.providers.NAME]``) is known."""
    if spec is None:
        return
    from autopack.config import ConfigError, load_settings
    from autopack.llm.door import resolve_model
    from autopack.llm.errors import ModelError

    try:
        resolve_model(spec, settings=load_settings(root).models.model_dump())
    except ModelError as exc:
        raise ConfigError(f"--model {spec}: {exc}") from exc


def _check_gate(settings: Settings) -> None:
    """The gate's overrides are checked against its policy before a run starts (an unknown
    rule or decision), not at the run's first gate."""
    from autopack.config import ConfigError
    from autopack.gate import PolicyError, policy_for

    try:
        policy_for(settings)
    except PolicyError as exc:
        raise ConfigError(f"{settings.source}: gate: {exc}") from exc


def _check_mcp(settings: Settings, plan: Plan, source: Path) -> None:
    """Every MCP tool a phase allows names a server of ``[mcp.servers]``: checked before
    a run starts, not when the phase's Builder asks for it."""
    if not any(phase.mcp_tools for _, phase in plan.phases()):
        return  # the MCP SDK is imported only for a plan that uses it
    from autopack.config import ConfigError
    from autopack.mcp.plans import plan_problem

    problem = plan_problem(plan, settings)
    if problem:
        raise ConfigError(f"{source}: {problem}")


@plan_app.command("check")
@fails_cleanly
def plan_check(plan: Annotated[Path, typer.Argument(help="The plan file.")]) -> None:
    """Validate a plan; exit 2 with file, line and field for each problem."""
    from autopack.plan import load_plan

    parsed = load_plan(plan)
    count = sum(1 for _ in parsed.phases())
    summary = f"{plan}: {len(parsed.tiers)} tiers, {count} phases"
    output.console.print(output.labelled("ok", summary, "green"))


@app.command()
@fails_cleanly
def init(repo: RepoOption = Path(".")) -> None:
    """Create .autopack/ and an autopack.toml with the detected test command."""
    from autopack.config import CONFIG_FILE, STATE_DIR, load_settings, render_default_config
    from autopack.verify import detect_test_command

    root = _repo(repo)
    (root / STATE_DIR).mkdir(exist_ok=True)
    git.exclude_state_dir(root)
    config = root / CONFIG_FILE
    if config.exists():
        output.console.print(f"{config} exists; left as it is")
    else:
        command = detect_test_command(root)
        config.write_text(render_default_config(command), encoding="utf-8")
        output.console.print(f"wrote {config} (test command: {command or 'none detected'})")
    load_settings(root)


@app.command()
@fails_cleanly
def run(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
    repo: RepoOption = Path("."),
    model: ModelOption = None,
) -> None:
    """Run a plan against a repository; every landed phase is a commit on autopack/<run>."""
    from autopack.config import load_settings
    from autopack.engine.create import create_run
    from autopack.plan import load_plan

    parsed = load_plan(plan)
    root = _repo(repo)
    _check_gate(load_settings(root))
    _check_mcp(load_settings(root), parsed, plan)
    _check_model(model, root)
    _preflight(root, parsed, model)
    rt = _open(root, model)
    run_id = create_run(rt, parsed, plan_source=str(plan.resolve()))
    raise typer.Exit(_execute(rt, run_id, parsed))


@app.command()
@fails_cleanly
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue.")],
    repo: RepoOption = Path("."),
    model: ModelOption = None,
) -> None:
    """Continue a stored run where it stopped; recorded steps are not redone."""
    from autopack.config import load_settings

    root = _repo(repo)
    _check_gate(load_settings(root))
    _check_model(model, root)
    rt = _open(root, model)
    view = rt.store.view(run_id)
    _preflight(root, view.plan, model or view.settings.get("model_override"))
    raise typer.Exit(_execute(rt, run_id, view.plan))


def _preflight(root: Path, plan: Plan, model: str | None) -> None:
    """Before the first model call: every model the run may use has a price and its
    provider answers with its key; otherwise exit 3 now, with the fix, not after
    minutes of retries (see ``autopack doctor``)."""
    from autopack.ci.doctor import preflight
    from autopack.config import load_settings
    from autopack.engine.attempts import EnvironmentProblem

    phase_models = [phase.models for _, phase in plan.phases() if phase.models]
    specs = [spec for m in phase_models for spec in (m.builder, m.auditor) if spec]
    problems = preflight(load_settings(root), model, [] if model else specs)
    if problems:
        lines = [f"{p.check}: {p.detail}" + (f" (fix: {p.fix})" if p.fix else "") for p in problems]
        raise EnvironmentProblem("a run cannot start:\n  " + "\n  ".join(lines))


def _execute(rt: Runtime, run_id: str, plan: Plan) -> int:
    from autopack.cli.view import live_run, run_table
    from autopack.engine.local import LeaseHeld, LocalExecutor

    output.console.print(output.labelled(f"run {run_id}:", plan.run.goal, "bold"))
    executor = LocalExecutor(rt)
    try:
        with live_run(output.console, rt.store, run_id):
            state = executor.execute(run_id)
    except KeyboardInterrupt:
        executor.cancel.set()
        output.err.print("interrupted")
        return 130
    except LeaseHeld:
        raise  # another executor has the run: nothing was recorded here
    except Exception as exc:
        return _stopped(rt, run_id, exc)
    view = rt.store.view(run_id)
    if not output.console.is_terminal:
        output.console.print(run_table(view))
    output.console.print(f"branch: {view.branch}   details: autopack status {run_id}")
    return EXIT.get(state, 1)


def _stopped(rt: Runtime, run_id: str, exc: Exception) -> int:
    """The executor stopped on an exception (it recorded the run PAUSED with the reason):
    say why and how to go on, with the documented exit code."""
    known, _ = _failure(exc)
    if known == 2:
        code, label = 2, "error"
    elif known == 3:
        code, label = 3, "environment"
    else:
        code, label = 1, f"internal error ({type(exc).__name__})"
    output.err.print(f"{label}: {exc}", markup=False, highlight=False)
    state = rt.store.view(run_id).state.value
    output.err.print(
        f"run {run_id} is {state}; fix the cause, then `autopack resume {run_id}`",
        markup=False,
        highlight=False,
    )
    return code


@app.command()
@fails_cleanly
def replay(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Re-run a recorded run offline from its cassette; check every phase lands the same tree."""
    from rich.text import Text

    from autopack.engine.replay import replay as replay_run

    rt = _open(_repo(repo))
    result = replay_run(rt, run_id)
    for phase in result.phases:
        trees = f"{phase.phase_id}: {phase.original_tree[:12]} -> {phase.replay_tree[:12]}"
        mark = Text("same", "green") if phase.same else Text("differs", "red")
        output.console.print(Text.assemble(trees, " ", mark))
    if result.identical:
        same = "every phase's tree hash equals the original's"
        output.console.print(f"replay {result.run_id}: {same}")
        raise typer.Exit(0)
    output.console.print(f"replay {result.run_id} {result.state.value}: trees differ", style="red")
    raise typer.Exit(1)


@app.command()
@fails_cleanly
def approve(
    run_id: str,
    phase_id: str,
    repo: RepoOption = Path("."),
    note: Annotated[str, typer.Option(help="Recorded with the approval.")] = "",
) -> None:
    """Land a phase that waits for approval; the run's executor commits it."""
    from autopack.engine import commands

    rt = _open(_repo(repo))
    granted = _command(lambda: commands.approve(rt.store, run_id, phase_id, by=_who(), note=note))
    output.console.print(f"approved {phase_id} attempt {granted.attempt}")


@app.command()
@fails_cleanly
def reject(
    run_id: str,
    phase_id: str,
    note: Annotated[str, typer.Option(help="Why; the Builder gets it as feedback.")],
    repo: RepoOption = Path("."),
    fail: Annotated[bool, typer.Option("--fail", help="Fail the phase instead.")] = False,
) -> None:
    """Send a waiting phase back with a note as feedback, or fail it with --fail."""
    from autopack.engine import commands

    rt = _open(_repo(repo))
    rejected = _command(
        lambda: commands.reject(rt.store, run_id, phase_id, by=_who(), note=note, fail=fail)
    )
    done = f"rejected {phase_id} attempt {rejected.attempt}"
    output.console.print(done + (" (failed)" if fail else ""))


@app.command()
@fails_cleanly
def cancel(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Stop a run at the next safe point; landed phases keep their commits."""
    from autopack.engine import commands
    from autopack.engine.local import cancel_orphan

    rt = _open(_repo(repo))
    reason = f"cancelled by {_who()}"
    state = _command(lambda: commands.cancel(rt.store, run_id, reason, executed=False))
    if state is RunState.CANCELLED or cancel_orphan(rt, run_id, reason):
        output.console.print(f"cancelled {run_id} (no executor was running it)")
    else:
        output.console.print(f"cancel requested for {run_id}")


def _command(carry_out: Callable[[], T]) -> T:
    """A run command's result; its refusal is bad input (exit 2, the reason)."""
    from autopack.engine.commands import CommandRefused

    try:
        return carry_out()
    except CommandRefused as exc:
        _problem(str(exc))


def _who() -> str:
    return getpass.getuser()


@app.command()
@fails_cleanly
def runs(
    repo: RepoOption = Path("."),
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: int = 20,
) -> None:
    """List runs, newest first, with progress, spend and pending approvals."""
    from autopack import rows
    from autopack.cli.view import runs_table

    root = _repo(repo)
    wanted = RunState(state.upper()) if state else None
    db = _default_db(root)
    listed = rows.list_runs(db, wanted and wanted.value, limit) if db else None
    if listed is None:
        listed = _open(root).store.list_runs(wanted, limit=limit)
    output.console.print(runs_table(listed))


@app.command()
@fails_cleanly
def status(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Show a run: tiers, phases, attempts, steps, spend and why it ended."""
    from autopack import rows
    from autopack.cli import view as views

    root = _repo(repo)
    db = _default_db(root)
    found = rows.run_status(db, run_id) if db else None
    if found is None:  # another database, or no such run: the store says which
        view = _open(root).store.view(run_id)
        lines, reason = views.RunLines.of_view(view), view.reason
        branch, base = view.branch, view.base_commit
    else:
        lines, reason = views.RunLines.of_status(found), found.run.reason
        branch, base = found.run.branch, found.base_commit
    output.console.print(views.run_table(lines))
    if reason:
        output.console.print(f"reason: {reason}")
    output.console.print(f"branch: {branch}  base: {base[:12]}")


def _default_db(root: Path) -> Path | None:
    """The repository's SQLite store when its settings name no other database (the
    common case, read without loading the settings); ``None`` otherwise."""
    from autopack import rows
    from autopack.configfile import default_db_path, names_a_database

    if names_a_database(root):
        return None
    return rows.sqlite_path(f"sqlite:///{default_db_path(root)}")


@app.command()
@fails_cleanly
def show(
    run_id: str,
    phase_id: str,
    repo: RepoOption = Path("."),
    attempt: Annotated[int | None, typer.Option(help="Default: the latest.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="All the recorded evidence, as one JSON document.")
    ] = False,
) -> None:
    """A phase's evidence: the gate's decision, the tests, the audit and the diff stat."""
    from autopack.cli.evidence import attempt_evidence, attempt_summary

    rt = _open(_repo(repo))
    view = rt.store.view(run_id)
    if phase_id not in view.phases:
        _problem(f"run {run_id} has no phase {phase_id!r}")
    phase = view.phases[phase_id]
    number = attempt or phase.attempt
    if number == 0:
        _problem(f"phase {phase_id} of {run_id} has not started ({phase.state.value})")
    found = {a["attempt"]: a["steps"] for a in phase.attempts} | {phase.attempt: phase.steps}
    steps = found.get(number)
    if steps is None:
        _problem(f"phase {phase_id} has no attempt {number}")
    folder = rt.run_dir(run_id) / "phases" / phase_id / str(number)
    evidence = attempt_evidence(folder, steps, run_id, phase_id, number, phase.state.value)
    if as_json:
        typer.echo(json.dumps(evidence, indent=2))
    else:
        output.console.print(attempt_summary(evidence))


@app.command()
@fails_cleanly
def demo(
    dir: Annotated[
        Path | None, typer.Option("--dir", help="Where to create the demo repository.")
    ] = None,
) -> None:
    """Run the bundled three-tier example with scripted model replies."""
    from autopack.cli.demo import run_demo

    if dir is not None and dir.exists() and (not dir.is_dir() or any(dir.iterdir())):
        _problem(f"--dir {dir} is not an empty folder; name a new or empty one")
    raise typer.Exit(run_demo(dir, output.console))


@app.command()
def serve(
    repo: RepoOption = Path("."),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys; only allowed on loopback.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local (embedded executor) or temporal (workflows on workers).")
    ] = "local",
    temporal: Annotated[
        str | None, typer.Option(help="Temporal frontend address, host:port (engine temporal).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOPACK_DB_URL",
            help="Store URL, e.g. postgresql+psycopg://... (the one the workers write to).",
        ),
    ] = None,
    task_queue: Annotated[
        str, typer.Option(help="Task queue the workers poll (engine temporal).")
    ] = "autopack",
    repo_url: Annotated[
        str | None,
        typer.Option(
            help="Git URL every worker can reach, for runs started here (engine temporal;"
            " default: the repository's path)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the live dashboard, with an executor for queued runs."""
    from autopack.api.cli import serve as serve_api

    serve_api(
        repo,
        host,
        port,
        no_auth,
        engine,
        temporal=temporal,
        db=db,
        task_queue=task_queue,
        repo_url=repo_url,
    )


@plan_app.command("draft", hidden=True)
@fails_cleanly
def plan_draft(
    goal: Annotated[str, typer.Argument(help="What the plan should achieve.")],
    repo: RepoOption = Path("."),
    out: Annotated[Path, typer.Option(help="Where to write the draft.")] = Path("plan.yaml"),
    model: ModelOption = None,
) -> None:
    """Draft a plan for GOAL from the repository; it is written for review, never run."""
    from autopack.cli.planning import draft

    draft(goal, _repo(repo), out, model, output.console)
