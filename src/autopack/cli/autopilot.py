"""``autopack intention check`` and ``autopack gaps``: the intention, and what stands
between the repository and it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated

import typer

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
        typer.Option("--no-run", help="Read text only: no tests, commands, ruff or mypy."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Rows of the table.")] = 50,
) -> None:
    """Find what is missing or broken at HEAD, without a model: failing, erroring,
    skipped and xfailed tests, unmet success criteria, ruff and mypy errors (when
    configured), TODO/FIXME, debug-ledger entries without a fix, untested public
    functions. Ranked, most urgent first."""
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


@fails_cleanly
def autopilot_command(
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
        typer.Option(help="Go on with autopilot ID after a crash (its journal and branch)."),
    ] = None,
) -> None:
    """Close the gaps: scan, plan for the top gaps, approve by policy, run, scan again.

    Works on its own branch (autopack/autopilot-ID); stops when the success criteria hold,
    the budget or iterations are spent, an iteration makes no progress, or a plan needs a
    person. Exit 0 when the criteria hold, 1 otherwise."""
    from autopack.autopilot.loop import Autopilot, AutopilotProblem

    root = _repo(repo)
    if git.rev_parse(root, "HEAD") is None:
        raise RepoProblem(f"{root} has no commit yet")
    wanted = load_intention(intention if intention is not None else intention_path(root))
    _check_model(model, root)
    if resume is None:
        outcome = Autopilot(root, wanted, model, auto_approve, say=console.print).run()
    else:
        try:
            pilot = Autopilot(root, wanted, model, auto_approve, console.print, resume)
            outcome = pilot.resume()
        except AutopilotProblem as exc:
            raise RepoProblem(str(exc)) from exc
    detail = f" ({outcome.detail})" if outcome.detail else ""
    console.print(f"autopilot {outcome.autopilot_id}: {outcome.stop}{detail}", soft_wrap=True)
    console.print(f"branch: {outcome.branch}   runs: {', '.join(outcome.runs) or 'none'}")
    if outcome.plan_for_review is not None:
        console.print(
            f"plan for review: {outcome.plan_for_review} (autopack run it, or edit it first)",
            soft_wrap=True,
        )
    raise typer.Exit(0 if outcome.finished else 1)
