"""``autopack tidy``: write the ledgers from ended runs, or check that they are append-only.

The main CLI mounts :data:`ledger_cli` without a name, so ``tidy`` is a top-level command.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.exc import SQLAlchemyError

from autopack.config import ConfigError
from autopack.ledger.check import check_ledgers
from autopack.ledger.summary import SummaryError, load_run_summaries
from autopack.ledger.sync import sync_repo
from autopack.ledger.tidy import TidyError, tidy

ledger_cli = typer.Typer(help="Ledgers: BUILD_HISTORY, DEBUG_LOG, ARCHITECTURE_DECISIONS.")


@ledger_cli.command("tidy")
def tidy_command(
    check: bool = typer.Option(False, "--check", help="Only check; exit 1 on a problem."),
    against: str | None = typer.Option(
        None, "--against", help="With --check: a commit whose entries must all be unchanged."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; write nothing."),
    commit: bool = typer.Option(
        False,
        "--commit/--no-commit",
        help="Also commit the docs, on their own, to the checked-out branch (default: write"
        " them into the working tree for you to review and commit).",
    ),
    branch: str | None = typer.Option(None, "--branch", help="Refuse to commit on another branch."),
    repo: Path = typer.Option(Path("."), "--repo", help="The repository."),
) -> None:
    """Turn ended runs into ledger entries and refresh README summary and docs/INDEX.md."""
    if check:
        _check(repo, against)
        return
    try:
        result = tidy(repo, load_run_summaries(repo), dry_run=dry_run, commit=commit, branch=branch)
    except SummaryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except TidyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3 if "not installed" in str(exc) else 1) from exc
    verb = "would change" if dry_run else "changed"
    if not result.changed:
        typer.echo("ledgers are up to date")
    else:
        typer.echo(f"new entries: {', '.join(result.new_entries) or 'none'}")
        typer.echo(f"{verb}: {', '.join(result.changed_files)}")
    if result.commit:
        typer.echo(f"committed {result.commit[:12]}")
    if not dry_run:
        echo_sync(repo)


def echo_sync(repo: Path) -> None:
    """Mirror the ledgers into ``sot_entries`` and say what changed there."""
    try:
        counts = sync_repo(repo)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except SQLAlchemyError as exc:
        typer.echo(f"error: the database: {exc}", err=True)
        raise typer.Exit(3) from exc
    typer.echo(f"sot_entries: {counts.describe()}")


def _check(repo: Path, against: str | None) -> None:
    try:
        problems = check_ledgers(repo, against)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except TidyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    typer.echo("ledgers ok" + (f" (append-only since {against})" if against else ""))
