"""The DB mirror of the ledgers follows the files: new rows, changed rows, nothing twice."""

from __future__ import annotations

from pathlib import Path

import typer
from ledger_helpers import make_run
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from autopack.ledger import tidy
from autopack.ledger.cli import tidy_command
from autopack.ledger.sync import sot_rows, sync_sot
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


def test_cli_tidy_leaves_sot_entries_matching_the_ledgers(repo: Path) -> None:
    run_dir = repo / ".autopack" / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(
        make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True).to_json()
    )
    app = typer.Typer()
    app.command("tidy")(tidy_command)
    app.command("noop")(lambda: None)  # more than one command: ``tidy`` stays a subcommand
    runner = CliRunner()

    first = runner.invoke(app, ["tidy", "--repo", str(repo)])
    second = runner.invoke(app, ["tidy", "--repo", str(repo)])

    assert first.exit_code == 0, first.output
    assert "sot_entries: 4 new, 0 changed, 0 unchanged" in first.output
    assert "sot_entries: 0 new, 0 changed, 4 unchanged" in second.output
    engine = create_engine(f"sqlite:///{repo / '.autopack' / 'autopack.db'}")
    with engine.connect() as conn:
        stored = conn.execute(
            select(sot_entries.c.file, sot_entries.c.entry_id, sot_entries.c.content_hash)
        ).all()
    expected = [(r.file, r.entry_id, r.content_hash) for r in sot_rows(repo, repo.name)]
    assert sorted(stored) == sorted(expected)


def test_the_seed_script_syncs_like_tidy(repo: Path) -> None:
    """scripts/tidy/sot_db_sync.py mirrors the ledgers as `autopack tidy` does."""
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "scripts" / "tidy" / "sot_db_sync.py"
    tidy(repo, [make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True)])

    def sync() -> str:
        done = subprocess.run(
            [sys.executable, str(script), "--repo", str(repo)],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    assert "4 new" in sync()
    assert "4 unchanged" in sync()
