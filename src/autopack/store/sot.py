"""``sot_entries``: ledger entries mirrored into the database, upserted by content hash.

A derived index for queries and the dashboard, never the source of truth: the ledgers
in ``docs/`` are. Rebuilding it from the files at any time gives the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Column, Connection, PrimaryKeyConstraint, String, Table, Text, select

from autopack.store.tables import metadata

sot_entries = Table(
    "sot_entries",
    metadata,
    Column("project", String(200), nullable=False),
    Column("file", String(200), nullable=False),
    Column("entry_id", String(32), nullable=False),
    Column("title", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    PrimaryKeyConstraint("project", "file", "entry_id"),
)


@dataclass(frozen=True)
class SotRow:
    """One ledger entry as the table holds it."""

    project: str
    file: str
    entry_id: str
    title: str
    content: str

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UpsertCounts:
    """How many rows were new, changed (hash differed) or already current."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def describe(self) -> str:
        return f"{self.inserted} new, {self.updated} changed, {self.unchanged} unchanged"


def upsert_sot_entries(conn: Connection, rows: Iterable[SotRow]) -> UpsertCounts:
    """Insert new entries and rewrite those whose hash changed; portable across dialects."""
    rows = list(rows)
    projects = {row.project for row in rows}
    known = {
        (r.project, r.file, r.entry_id): r.content_hash
        for r in conn.execute(
            select(
                sot_entries.c.project,
                sot_entries.c.file,
                sot_entries.c.entry_id,
                sot_entries.c.content_hash,
            ).where(sot_entries.c.project.in_(projects))
        )
    }
    inserted = updated = 0
    for row in rows:
        key = (row.project, row.file, row.entry_id)
        values = {"title": row.title, "content": row.content, "content_hash": row.content_hash}
        if key not in known:
            conn.execute(
                sot_entries.insert().values(
                    project=row.project, file=row.file, entry_id=row.entry_id, **values
                )
            )
            inserted += 1
        elif known[key] != row.content_hash:
            conn.execute(
                sot_entries.update()
                .where(sot_entries.c.project == row.project)
                .where(sot_entries.c.file == row.file)
                .where(sot_entries.c.entry_id == row.entry_id)
                .values(**values)
            )
            updated += 1
    return UpsertCounts(inserted, updated, len(rows) - inserted - updated)
