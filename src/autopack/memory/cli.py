"""``autopack memory index|search`` and ``autopack rules list|promote|retire``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from autopack.ledger import SummaryError, load_run_summaries
from autopack.ledger.cli import echo_sync
from autopack.memory.rules import RuleBook, RuleError
from autopack.memory.service import MemoryService, MemoryUnavailable

memory_cli = typer.Typer(help="The memory: index ledgers and runs, search them.")
rules_cli = typer.Typer(help="Learned rules: failures fixed the same way in several runs.")

T = TypeVar("T")
REPO = typer.Option(Path("."), "--repo", help="The repository.")


@memory_cli.command("index")
def index_command(repo: Path = REPO) -> None:
    """Index the ledgers, debug fixes and run summaries (only what changed is redone).

    The ledgers are mirrored into ``sot_entries`` as well.
    """
    service = MemoryService.for_repo(repo)
    report = _or_exit(lambda: service.index_repo(repo, force=True))
    dense = "keyword + dense" if service.vectors is not None else "keyword only (no model)"
    typer.echo(f"{report.documents} documents, {report.updated} (re)indexed; {dense}")
    echo_sync(repo)
    if not service.indexing_enabled:
        typer.echo("note: automatic indexing is off (AUTOPACK_ENABLE_SOT_MEMORY_INDEXING)")


@memory_cli.command("search")
def search_command(
    query: str,
    k: int = typer.Option(5, "-k", min=1, help="How many results."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, keyword or dense."),
    repo: Path = REPO,
) -> None:
    """Search the memory and print the best hits."""
    if mode not in ("hybrid", "keyword", "dense"):
        typer.echo(f"error: unknown mode {mode!r}; use hybrid, keyword or dense", err=True)
        raise typer.Exit(2)
    service = MemoryService.for_repo(repo, dense=mode != "keyword")
    try:
        hits = service.search(query, k=k, mode=mode)  # type: ignore[arg-type]
    except MemoryUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    if not hits:
        typer.echo("no hits")
    for rank, hit in enumerate(hits, start=1):
        typer.echo(f"{rank}. {hit.id} [{hit.source}] {hit.score:.4f}  {hit.title}")
        typer.echo(f"   {' '.join(hit.text.split())[:200]}")


@rules_cli.command("list")
def list_command(repo: Path = REPO) -> None:
    """Find new candidates in the run summaries, then list every rule."""
    book = _or_exit(lambda: RuleBook.load(repo))
    new = _or_exit(lambda: book.refresh(load_run_summaries(repo)))
    book.save()
    if not book.rules:
        typer.echo("no rules yet: a failure must be fixed the same way in two runs")
    for rule in book.rules.values():
        mark = " (new)" if rule.id in new else ""
        typer.echo(f"{rule.id} {rule.status}{mark}: `{rule.signature}` -> {rule.fix_kind}")
        typer.echo(f"   runs {', '.join(rule.runs)}; scope {', '.join(rule.scope)}")


@rules_cli.command("promote")
def promote_command(rule_id: str, repo: Path = REPO) -> None:
    """Inject the rule into matching phases' Builder prompts from now on."""
    _set(repo, rule_id, "promoted")


@rules_cli.command("retire")
def retire_command(rule_id: str, repo: Path = REPO) -> None:
    """Stop injecting the rule."""
    _set(repo, rule_id, "retired")


def _set(repo: Path, rule_id: str, status: str) -> None:
    book = _or_exit(lambda: RuleBook.load(repo))
    rule = _or_exit(lambda: book.set_status(rule_id, status))
    book.save()
    typer.echo(f"{rule.id} is {rule.status}")


def _or_exit(action: Callable[[], T]) -> T:
    try:
        return action()
    except (RuleError, SummaryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
