"""SOT -> DB sync: mirror the repository's ledger entries into ``sot_entries``."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from autopack.ledger.entries import FILE_NAME
from autopack.ledger.tidy import KINDS, read_ledgers
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
