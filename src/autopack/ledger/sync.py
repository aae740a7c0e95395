"""SOT -> DB sync: mirror the repository's ledger entries into ``sot_entries``.

Called wherever the ledgers are written or indexed: ``autopack tidy``, a run's end with
``tidy_on_finish`` or memory indexing switched on, and ``autopack memory index``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from autopack.config import load_settings
from autopack.ledger.entries import FILE_NAME
from autopack.ledger.tidy import KINDS, read_ledgers
from autopack.store import make_engine, migrate
from autopack.store.sot import SotRow, UpsertCounts, upsert_sot_entries


def sot_rows(repo: Path, project: str) -> list[SotRow]:
    """Every entry of the three ledgers, with its full text as content."""
    ledgers = read_ledgers(repo)
    return [
        SotRow(project, FILE_NAME[kind], entry.id, entry.title, entry.text())
        for kind in KINDS
        for entry in ledgers[kind].entries
    ]


def sync_sot(engine: Engine, repo: Path, project: str | None = None) -> UpsertCounts:
    """Upsert ``repo``'s entries (project defaults to the directory name) in one transaction."""
    with engine.begin() as conn:
        return upsert_sot_entries(conn, sot_rows(repo, project or repo.resolve().name))


def sync_repo(repo: Path) -> UpsertCounts:
    """Mirror ``repo``'s ledgers into the database its settings name (migrated first)."""
    engine = make_engine(load_settings(repo).database_url(repo.resolve()))
    try:
        migrate(engine)
        return sync_sot(engine, repo)
    finally:
        engine.dispose()
