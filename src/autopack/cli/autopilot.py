"""``autopack intention check`` and ``autopack gaps``: the intention, and what stands
between the repository and it."""

from __future__ import annotations

import getpass
import json
import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from autopack.autopilot.gaps import Scan, scan
from autopack.autopilot.intention import (
    INTENTION_FILE,
    Intention,
    intention_path,
    load_intention,
)
from autopack.cli.app import ModelOption, RepoOption, _check_model, _repo, fails_cleanly
from autopack.cli.output import console, labelled
from autopack.config import load_settings
from autopack.engine.create import RepoProblem
from autopack.workspace import git

if TYPE_CHECKING:
    from autopack.autopilot_projection import AutopilotView
    from autopack.store import Store

T = TypeVar("T")

WIDTH = 80
"""The table fits an 80-column terminal whatever the paths and messages are."""

intention_app = typer.Typer(
    help=f"The project's intention ({INTENTION_FILE}): north star, criteria, constraints.",
    no_args_is_help=True,
)


@intention_app.command("check")
@fails_cleanly
def intention_check(
    path: Annotated[
        Path | None, typer.Argument(help=f"The intention file (default: {INTENTION_FILE}).")
    ] = None,
    repo: RepoOption = Path("."),
) -> None:
    """Validate an intention; exit 2 with file, line and field for each problem."""
    target = path if path is not None else intention_path(_repo(repo))
    intention = load_intention(target)
    criteria = intention.success_criteria
    count = len(criteria.tests) + len(criteria.commands) + len(criteria.files)
    console.print(labelled("ok", f"{target}: {count} success criteria", "green"), soft_wrap=True)


@fails_cleanly
def gaps_command(
    repo: RepoOption = Path("."),
    intention: Annotated[
        Path | None,
        typer.Option(help=f"The intention file (default: {INTENTION_FILE} when it exists)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every gap as JSON.")] = False,
    no_run: Annotated[
        bool,
        typer.Option(
            "--no-run", help="Read text only: no tests, README commands, commands, ruff or mypy."
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Rows of the table.")] = 50,
) -> None:
    """Find what is missing or broken at HEAD, without a model: failing, erroring,
    skipped and xfailed tests, unmet success criteria, README commands that fail, ruff
    and mypy errors (when configured), TODO/FIXME, debug-ledger entries without a fix,
    untested public functions. Ranked, most urgent first."""
    root = _repo(repo)
    if git.rev_parse(root, "HEAD") is None:
        raise RepoProblem(f"{root} has no commit yet: the scan reads HEAD")
    wanted = _intention(root, intention)
    result = scan(root, wanted, load_settings(root), run=not no_run)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    for line in table_lines(result, limit):
        console.print(line, soft_wrap=True)


def _intention(root: Path, path: Path | None) -> Intention:
    """The named intention, else the repository's, else one that allows everything."""
    if path is not None:
        return load_intention(path)
    default = intention_path(root)
    if default.exists():
        return load_intention(default)
    return Intention(north_star="(no intention file)")


def table_lines(result: Scan, limit: int) -> list[str]:
    """The ranked gaps as lines of at most :data:`WIDTH` characters."""
    lines = [f"{'#':>3} {'kind':<10} {'where':<28} what"]
    for rank, gap in enumerate(result.gaps[:limit], 1):
        where = _fit(gap.where(), 28, keep_end=True)
        what = _fit(gap.message.replace("\n", " "), WIDTH - 44)
        lines.append(f"{rank:>3} {gap.kind:<10} {where:<28} {what}")
    hidden = len(result.gaps) - limit
    if hidden > 0:
        lines.append(f"... {hidden} more (--limit, or --json for all)")
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts().items()) or "none"
    summary = f"{len(result.gaps)} gaps at {result.head[:12]} ({result.files} files): {counts}"
    lines += textwrap.wrap(summary, WIDTH, subsequent_indent="  ")
    lines += [_fit(f"note: {note}", WIDTH) for note in result.notes]
    return lines


def _fit(text: str, width: int, *, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3) :] if keep_end else text[: width - 3] + "..."


class AutopilotGroup(TyperGroup):
    """``autopack autopilot [OPTIONS]`` starts one (``start``); the other words answer one."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["start", *args]
        return super().parse_args(ctx, args)


AUTOPILOT_HELP = """Close the gaps: scan, plan for the top gaps, approve by policy, run, scan again.

autopack autopilot [--auto-approve] [--model SPEC] [--resume ID] [--no-wait]: start one
(or go on with one after a crash).

autopack autopilot status [ID], approve ID, reject ID --note, stop ID: show autopilots,
answer a plan that waits for a person, stop one."""
autopilot_app = typer.Typer(cls=AutopilotGroup, help=AUTOPILOT_HELP, no_args_is_help=False)
IdArgument = Annotated[str, typer.Argument(help="The autopilot's id (8 hex digits).")]


@autopilot_app.command("start")
@fails_cleanly
def autopilot_start(
    repo: RepoOption = Path("."),
    model: ModelOption = None,
    intention: Annotated[
        Path | None, typer.Option(help=f"The intention file (default: {INTENTION_FILE}).")
    ] = None,
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve",
            help="Run plans whose phases are all low risk and write only allowed paths; "
            "any other plan still waits for a person.",
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(help="Go on with autopilot ID after a crash (from the store's log)."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for a person's answer to a plan or phase, or exit 1 leaving it waiting "
            "(answer it, then --resume ID).",
        ),
    ] = True,
) -> None:
    """Close the gaps: scan, plan for the top gaps, approve by policy, run, scan again.

    Works on its own branch (autopack/autopilot-ID); stops when the success criteria hold,
    the budget or iterations are spent, an iteration makes no progress, or a person stops
    it. A plan the policy does not approve waits for `autopack autopilot approve ID` (or
    the API, or the dashboard). Exit 0 when the criteria hold, 1 otherwise."""
    from autopack.autopilot.loop import Autopilot, AutopilotProblem

    root = _repo(repo)
    if git.rev_parse(root, "HEAD") is None:
        raise RepoProblem(f"{root} has no commit yet")
    source = intention if intention is not None else intention_path(root)
    wanted = load_intention(source)
    _check_model(model, root)
    try:
        pilot = Autopilot(
            root, wanted, model, auto_approve, console.print, resume or secrets.token_hex(4),
            intention_source=source, wait=wait,
        )  # fmt: skip
        outcome = pilot.run() if resume is None else pilot.resume()
    except AutopilotProblem as exc:
        raise RepoProblem(str(exc)) from exc
    detail = f" ({outcome.detail})" if outcome.detail else ""
    console.print(f"autopilot {outcome.autopilot_id}: {outcome.stop}{detail}", soft_wrap=True)
    console.print(f"branch: {outcome.branch}   runs: {', '.join(outcome.runs) or 'none'}")
    if outcome.plan_for_review is not None:
        console.print(
            f"plan for review: {outcome.plan_for_review} "
            f"(autopack autopilot approve {outcome.autopilot_id}, then --resume it)",
            soft_wrap=True,
        )
    raise typer.Exit(0 if outcome.finished else 1)


@autopilot_app.command("status")
@fails_cleanly
def autopilot_status(
    autopilot_id: Annotated[
        str | None, typer.Argument(help="One autopilot (default: list them all).")
    ] = None,
    repo: RepoOption = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """List the autopilots, or show one autopilot's iterations."""
    from autopack.autopilot_projection import autopilot_dict

    store = _store(repo)
    if autopilot_id is None:
        rows = store.autopilots.list(limit=100)
        if as_json:
            console.print_json(json.dumps(rows))
            return
        console.print(f"{'id':<9} {'state':<18} {'it':>3}  {'updated':<24} stop", soft_wrap=True)
        for row in rows:
            console.print(
                f"{row['id']:<9} {row['state']:<18} {row['iterations']:>3}  "
                f"{row['updated_at']:<24} {row['stop_reason']}",
                soft_wrap=True,
            )
        return
    view = _autopilot(store, autopilot_id)
    data = autopilot_dict(view)
    if as_json:
        console.print_json(json.dumps(data))
        return
    stop = f" ({view.stop_reason}{': ' + view.stop_detail if view.stop_detail else ''})"
    shown = f"autopilot {view.autopilot_id}: {view.state}" + (stop if view.stop_reason else "")
    console.print(shown, soft_wrap=True)
    console.print(
        f"branch {view.started.branch}   spent {view.tokens} tokens, ${view.cost_usd:.4f}, "
        f"{view.model_calls} calls",
        soft_wrap=True,
    )
    for it in data["iterations"]:
        decided = f" by {it['decided_by']}" if it["decided_by"] else ""
        run = f"run {it['run_id']} {it['run_state']}" if it["run_state"] else ""
        ended = f"closed {it['closed']}, {it['gaps_after']} left" if it["ended"] else ""
        console.print(
            f"  {it['iteration']:>2}  {it['gaps']} gaps  plan {it['approval'] or 'drafting'}"
            f"{decided}  {run}  {ended}".rstrip(),
            soft_wrap=True,
        )
        if it["approval"] == "waiting":
            console.print(f"      waits: {'; '.join(it['reasons'])} ({it['plan_path']})",
                          soft_wrap=True)  # fmt: skip


@autopilot_app.command("approve")
@fails_cleanly
def autopilot_approve(
    autopilot_id: IdArgument,
    repo: RepoOption = Path("."),
    note: Annotated[str, typer.Option(help="Recorded with the approval.")] = "",
) -> None:
    """Let the plan that waits for a person run."""
    from autopack.autopilot import commands

    store = _store(repo)
    _autopilot(store, autopilot_id)
    number = _answer(lambda: commands.approve_plan(store, autopilot_id, by=_who(), note=note))
    console.print(f"approved the plan of autopilot {autopilot_id} iteration {number}")


@autopilot_app.command("reject")
@fails_cleanly
def autopilot_reject(
    autopilot_id: IdArgument,
    note: Annotated[str, typer.Option(help="Why (required); recorded with the rejection.")],
    repo: RepoOption = Path("."),
) -> None:
    """Turn down the plan that waits for a person; the autopilot stops."""
    from autopack.autopilot import commands

    store = _store(repo)
    _autopilot(store, autopilot_id)
    number = _answer(lambda: commands.reject_plan(store, autopilot_id, by=_who(), note=note))
    console.print(f"rejected the plan of autopilot {autopilot_id} iteration {number}")


@autopilot_app.command("stop")
@fails_cleanly
def autopilot_stop(autopilot_id: IdArgument, repo: RepoOption = Path(".")) -> None:
    """Ask an autopilot to stop at its next safe point (a run in flight finishes first)."""
    from autopack.autopilot import commands

    store = _store(repo)
    _autopilot(store, autopilot_id)
    _answer(lambda: commands.request_stop(store, autopilot_id, by=_who()))
    console.print(f"stop requested for autopilot {autopilot_id}")


def _store(repo: Path) -> Store:
    from autopack.engine.runtime import Runtime

    return Runtime.open(_repo(repo)).store


def _autopilot(store: Store, autopilot_id: str) -> AutopilotView:
    from autopack.store.autopilots import AutopilotNotFound

    try:
        return store.autopilots.view(autopilot_id)
    except AutopilotNotFound:
        raise RepoProblem(f"no autopilot {autopilot_id} in this repository") from None


def _answer(carry_out: Callable[[], T]) -> T:
    """A command's result; its refusal is bad input (exit 2, the reason)."""
    from autopack.autopilot.commands import AutopilotRefused

    try:
        return carry_out()
    except AutopilotRefused as exc:
        raise RepoProblem(str(exc)) from exc


def _who() -> str:
    return getpass.getuser()
