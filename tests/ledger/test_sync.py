"""The DB mirror of the ledgers follows the files: new rows, changed rows, nothing twice."""

from __future__ import annotations

from pathlib import Path

from ledger_helpers import make_run
from sqlalchemy import create_engine, select

from autopack.ledger import tidy
from autopack.ledger.sync import sync_sot
from autopack.store.sot import sot_entries


def test_sync_upserts_by_hash(repo: Path, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'sot.db'}")
    sot_entries.create(engine)
    tidy(repo, [make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True)])

    first = sync_sot(engine, repo, "demo")
    second = sync_sot(engine, repo, "demo")
    path = repo / "docs" / "DEBUG_LOG.md"
    path.write_text(path.read_text().replace("export Session", "re-export Session"))
    third = sync_sot(engine, repo, "demo")

    assert (first.inserted, first.updated, first.unchanged) == (4, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 4)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 3)
    with engine.connect() as conn:
        rows = conn.execute(select(sot_entries.c.entry_id, sot_entries.c.file)).all()
        content = conn.execute(
            select(sot_entries.c.content).where(sot_entries.c.entry_id == "DBG-001")
        ).scalar_one()
    assert sorted(rows) == [
        ("BUILD-001", "BUILD_HISTORY.md"),
        ("DBG-001", "DEBUG_LOG.md"),
        ("DBG-002", "DEBUG_LOG.md"),
        ("DEC-001", "ARCHITECTURE_DECISIONS.md"),
    ]
    assert "re-export Session" in content
