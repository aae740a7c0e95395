"""Commands of the ``autopack`` CLI. Each one is thin: it parses, calls the engine, prints."""

from __future__ import annotations

import functools
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.syntax import Syntax
from rich.text import Text
from typer.core import TyperGroup

from autopack.autopilot.intention import IntentionError
from autopack.cli.output import console, err, labelled
from autopack.cli.view import live_run, run_table, runs_table
from autopack.config import (
    CONFIG_FILE,
    STATE_DIR,
    ConfigError,
    Settings,
    load_settings,
    render_default_config,
)
from autopack.engine import RepoProblem, create_run
from autopack.engine.attempts import EnvironmentProblem
from autopack.engine.local import LeaseHeld, LocalExecutor, cancel_orphan
from autopack.engine.runtime import Runtime
from autopack.events import ApprovalGranted, ApprovalRejected, CancelRequested
from autopack.gate import policy_for
from autopack.llm.errors import ModelError
from autopack.plan import Plan, PlanError, load_plan
from autopack.states import RUN_TERMINAL, PhaseState, RunState
from autopack.store import RunExists, RunNotFound
from autopack.workspace import git

F = TypeVar("F", bound=Callable[..., Any])

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
        except (PlanError, IntentionError) as exc:
            what = "invalid plan" if isinstance(exc, PlanError) else "invalid intention"
            err.print(labelled(what, f"({len(exc.issues)} problem(s)):"))
            for issue in exc.issues:
                err.print(f"  {issue}")
            raise typer.Exit(2) from exc
        except (ConfigError, RepoProblem, RunExists, RunNotFound) as exc:
            err.print(labelled("error:", _message(exc)))
            raise typer.Exit(2) from exc
        except LeaseHeld as exc:
            err.print(labelled("refused:", str(exc)))
            raise typer.Exit(1) from exc
        except (EnvironmentProblem, git.GitError, ModelError) as exc:
            err.print(labelled("environment:", str(exc)))
            raise typer.Exit(3) from exc

    return wrapper  # type: ignore[return-value]


def _message(exc: Exception) -> str:
    if isinstance(exc, RunNotFound):
        return f"no run {exc.args[0]!r} in this repository (see `autopack runs`)"
    if isinstance(exc, RunExists):
        return f"a run {exc.args[0]!r} already exists; give the plan another run.id"
    return str(exc)


class PlanGroup(TyperGroup):
    """``autopack plan GOAL`` drafts a plan; ``autopack plan check PLAN`` validates one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["draft", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="autopack",
    help="Autonomous builds: plans run phase by phase through Builder, Auditor and Quality Gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
PLAN_HELP = """Check or draft plans.

autopack plan "GOAL" [--out plan.yaml] [--model SPEC]: the Planner drafts a plan for GOAL
from the repository and writes it for you to review (it never runs it).

autopack plan check PLAN: validate a plan; exit 2 naming file, line and field."""
plan_app = typer.Typer(cls=PlanGroup, help=PLAN_HELP, no_args_is_help=True)
app.add_typer(plan_app, name="plan")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"autopack {version('autopack')}")
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
    repo = repo.resolve()
    if not repo.is_dir() or not git.is_repo(repo):
        raise RepoProblem(f"{repo} is not a git repository")
    return git.toplevel(repo)


def _check_model(spec: str | None, root: Path) -> None:
    """Resolve a --model spec before anything is written, so a typo exits 2 cleanly.

    The spec is resolved with the repository's ``[models]`` settings, as the run will
    resolve it: a provider configured there (``[models.providers.NAME]``) is known."""
    if spec is None:
        return
    from autopack.llm.door import resolve_model

    try:
        resolve_model(spec, settings=load_settings(root).models.model_dump())
    except ModelError as exc:
        raise ConfigError(f"--model {spec}: {exc}") from exc


def _check_gate(settings: Settings) -> None:
    """The gate's overrides are checked against its policy before a run starts (an unknown
    rule or decision), not at the run's first gate."""
    from autopack.gate import PolicyError

    try:
        policy_for(settings)
    except PolicyError as exc:
        raise ConfigError(f"{settings.source}: gate: {exc}") from exc


@plan_app.command("check")
@fails_cleanly
def plan_check(plan: Annotated[Path, typer.Argument(help="The plan file.")]) -> None:
    """Validate a plan; exit 2 with file, line and field for each problem."""
    parsed = load_plan(plan)
    count = sum(1 for _ in parsed.phases())
    console.print(labelled("ok", f"{plan}: {len(parsed.tiers)} tiers, {count} phases", "green"))


@app.command()
@fails_cleanly
def init(repo: RepoOption = Path(".")) -> None:
    """Create .autopack/ and an autopack.toml with the detected test command."""
    from autopack.verify import detect_test_command

    root = _repo(repo)
    (root / STATE_DIR).mkdir(exist_ok=True)
    git.exclude_state_dir(root)
    config = root / CONFIG_FILE
    if config.exists():
        console.print(f"{config} exists; left as it is")
    else:
        command = detect_test_command(root)
        config.write_text(render_default_config(command), encoding="utf-8")
        console.print(f"wrote {config} (test command: {command or 'none detected'})")
    load_settings(root)


@app.command()
@fails_cleanly
def run(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
    repo: RepoOption = Path("."),
    model: ModelOption = None,
) -> None:
    """Run a plan against a repository; every landed phase is a commit on autopack/<run>."""
    parsed = load_plan(plan)
    root = _repo(repo)
    _check_gate(load_settings(root))
    _check_model(model, root)
    _preflight(root, parsed, model)
    rt = Runtime.open(root, model_override=model)
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
    root = _repo(repo)
    _check_gate(load_settings(root))
    _check_model(model, root)
    rt = Runtime.open(root, model_override=model)
    view = rt.store.view(run_id)
    _preflight(root, view.plan, model or view.settings.get("model_override"))
    raise typer.Exit(_execute(rt, run_id, view.plan))


def _preflight(root: Path, plan: Plan, model: str | None) -> None:
    """Before the first model call: every model the run may use has a price and its
    provider answers with its key; otherwise exit 3 now, with the fix, not after
    minutes of retries (see ``autopack doctor``)."""
    from autopack.ci.doctor import preflight

    phase_models = [phase.models for _, phase in plan.phases() if phase.models]
    specs = [spec for m in phase_models for spec in (m.builder, m.auditor) if spec]
    problems = preflight(load_settings(root), model, [] if model else specs)
    if problems:
        lines = [f"{p.check}: {p.detail}" + (f" (fix: {p.fix})" if p.fix else "") for p in problems]
        raise EnvironmentProblem("a run cannot start:\n  " + "\n  ".join(lines))


def _execute(rt: Runtime, run_id: str, plan: Plan) -> int:
    console.print(labelled(f"run {run_id}:", plan.run.goal, "bold"))
    executor = LocalExecutor(rt)
    try:
        with live_run(console, rt.store, run_id):
            state = executor.execute(run_id)
    except KeyboardInterrupt:
        executor.cancel.set()
        err.print("interrupted")
        return 130
    except LeaseHeld:
        raise  # another executor has the run: nothing was recorded here
    except Exception as exc:
        return _stopped(rt, run_id, exc)
    view = rt.store.view(run_id)
    if not console.is_terminal:
        console.print(run_table(view))
    console.print(f"branch: {view.branch}   details: autopack status {run_id}")
    return EXIT.get(state, 1)


def _stopped(rt: Runtime, run_id: str, exc: Exception) -> int:
    """The executor stopped on an exception (it recorded the run PAUSED with the reason):
    say why and how to go on, with the documented exit code."""
    if isinstance(exc, ConfigError):
        code, label = 2, "error"
    elif isinstance(exc, EnvironmentProblem | git.GitError | ModelError):
        code, label = 3, "environment"
    else:
        code, label = 1, f"internal error ({type(exc).__name__})"
    err.print(f"{label}: {exc}", markup=False, highlight=False)
    state = rt.store.view(run_id).state.value
    err.print(
        f"run {run_id} is {state}; fix the cause, then `autopack resume {run_id}`",
        markup=False,
        highlight=False,
    )
    return code


@app.command()
@fails_cleanly
def replay(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Re-run a recorded run offline from its cassette; check every phase lands the same tree."""
    from autopack.engine.replay import replay as replay_run

    rt = Runtime.open(_repo(repo))
    result = replay_run(rt, run_id)
    for phase in result.phases:
        trees = f"{phase.phase_id}: {phase.original_tree[:12]} -> {phase.replay_tree[:12]}"
        mark = Text("same", "green") if phase.same else Text("differs", "red")
        console.print(Text.assemble(trees, " ", mark))
    if result.identical:
        console.print(f"replay {result.run_id}: every phase's tree hash equals the original's")
        raise typer.Exit(0)
    console.print(f"replay {result.run_id} {result.state.value}: trees differ", style="red")
    raise typer.Exit(1)


def _waiting(rt: Runtime, run_id: str, phase_id: str) -> int:
    """The attempt of a phase that waits for approval; bad input otherwise."""
    view = rt.store.view(run_id)
    phase = view.phases.get(phase_id)
    if phase is None or phase.state is not PhaseState.AWAITING_APPROVAL:
        state = phase.state.value if phase else "not in this run"
        raise RepoProblem(f"phase {phase_id!r} of {run_id} is not awaiting approval ({state})")
    return phase.attempt


@app.command()
@fails_cleanly
def approve(
    run_id: str,
    phase_id: str,
    repo: RepoOption = Path("."),
    note: Annotated[str, typer.Option(help="Recorded with the approval.")] = "",
) -> None:
    """Land a phase that waits for approval; the run's executor commits it."""
    rt = Runtime.open(_repo(repo))
    attempt = _waiting(rt, run_id, phase_id)
    granted = ApprovalGranted(phase_id=phase_id, attempt=attempt, note=note, by=_who())
    rt.store.append(run_id, granted)
    console.print(f"approved {phase_id} attempt {attempt}")


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
    rt = Runtime.open(_repo(repo))
    attempt = _waiting(rt, run_id, phase_id)
    rejected = ApprovalRejected(phase_id=phase_id, attempt=attempt, note=note, by=_who(), fail=fail)
    rt.store.append(run_id, rejected)
    console.print(f"rejected {phase_id} attempt {attempt}" + (" (failed)" if fail else ""))


@app.command()
@fails_cleanly
def cancel(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Stop a run at the next safe point; landed phases keep their commits."""
    rt = Runtime.open(_repo(repo))
    if rt.store.view(run_id).state in RUN_TERMINAL:
        raise RepoProblem(f"run {run_id} has already ended")
    reason = f"cancelled by {_who()}"
    rt.store.append(run_id, CancelRequested(reason=reason))
    if cancel_orphan(rt, run_id, reason):
        console.print(f"cancelled {run_id} (no executor was running it)")
    else:
        console.print(f"cancel requested for {run_id}")


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
    root = _repo(repo)
    rt = Runtime.open(root)
    wanted = RunState(state.upper()) if state else None
    console.print(runs_table(rt.store.list_runs(wanted, limit=limit)))


@app.command()
@fails_cleanly
def status(run_id: str, repo: RepoOption = Path(".")) -> None:
    """Show a run: tiers, phases, attempts, steps, spend and why it ended."""
    rt = Runtime.open(_repo(repo))
    view = rt.store.view(run_id)
    console.print(run_table(view))
    if view.reason:
        console.print(f"reason: {view.reason}")
    console.print(f"branch: {view.branch}  base: {view.base_commit[:12]}")


@app.command()
@fails_cleanly
def show(
    run_id: str,
    phase_id: str,
    repo: RepoOption = Path("."),
    attempt: Annotated[int | None, typer.Option(help="Default: the latest.")] = None,
) -> None:
    """A phase's evidence: the diff, the test result, the audit and the gate's decision."""
    rt = Runtime.open(_repo(repo))
    view = rt.store.view(run_id)
    if phase_id not in view.phases:
        raise RepoProblem(f"run {run_id} has no phase {phase_id!r}")
    phase = view.phases[phase_id]
    number = attempt or phase.attempt
    found = {a["attempt"]: a["steps"] for a in phase.attempts} | {phase.attempt: phase.steps}
    steps = found.get(number)
    if steps is None:
        raise RepoProblem(f"phase {phase_id} has no attempt {number}")
    folder = rt.run_dir(run_id) / "phases" / phase_id / str(number)
    console.rule(f"{phase_id} attempt {number}: {phase.state.value}")
    _show_file(folder / "changes.diff", "diff")
    _show_file(folder / "verify.json", "json")
    refused = steps.get("apply", {}).get("feedback")
    if refused:  # the edits engine's per-hunk report, as the Builder was told it
        console.print("edits refused", style="bold")
        console.print(refused)
    for step in ("audit", "gate", "commit"):
        if step in steps:
            console.print(step, style="bold")
            console.print_json(json.dumps(steps[step]))


def _show_file(path: Path, lexer: str) -> None:
    if path.exists():
        console.print(path.name, style="bold")
        console.print(Syntax(path.read_text(encoding="utf-8"), lexer, word_wrap=True))


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
        raise RepoProblem(f"--dir {dir} is not an empty folder; name a new or empty one")
    raise typer.Exit(run_demo(dir, console))


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

    draft(goal, _repo(repo), out, model, console)


def _mount_rooms() -> None:
    """Commands whose code lives with the room they drive."""
    from autopack.api.cli import keys_app
    from autopack.ci.cli import mount as mount_ci
    from autopack.cli.autopilot import autopilot_command, gaps_command, intention_app
    from autopack.edits.cli import edits_app
    from autopack.engine.worker import worker
    from autopack.ledger.cli import tidy_command
    from autopack.memory.cli import memory_cli, rules_cli

    app.add_typer(edits_app, name="edits")
    app.add_typer(memory_cli, name="memory")
    app.add_typer(rules_cli, name="rules")
    app.add_typer(keys_app, name="keys")
    app.add_typer(intention_app, name="intention")
    app.command("gaps")(gaps_command)
    app.command("autopilot")(autopilot_command)
    app.command("tidy")(tidy_command)
    app.command("worker")(worker)
    mount_ci(app)


_mount_rooms()
