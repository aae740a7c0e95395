"""A run whose phase failed is written to the ledgers as it happened: the build entry
counts the attempt that ran and says why it failed, and the debug log has an entry for
the failure that ended the phase (docs/ledger-format.md)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from autopack.cli import app
from autopack.workspace import git

PLAN = """\
run: {id: r1, goal: Change a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Set A to 2
        scope: {paths: [a.py]}
        tests: {command: "true"}
"""
# The script has no Builder reply for the phase: its first attempt fails for a reason.
SCRIPT = "version: 1\nreplies:\n  other:\n    builder: [nothing]\n"


def test_a_failed_phase_is_recorded_with_its_attempt_reason_and_a_debug_entry(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    model = f"scripted:{tmp_path / 'script.yaml'}"
    runner = CliRunner()
    done = runner.invoke(
        app, ["run", str(tmp_path / "plan.yaml"), "-C", str(repo), "--model", model]
    )
    assert done.exit_code == 1, done.output
    tidied = runner.invoke(app, ["tidy", "--repo", str(repo)])
    assert tidied.exit_code == 0, tidied.output

    build = (repo / "docs" / "BUILD_HISTORY.md").read_text()
    assert "- Status: FAILED" in build
    assert "p FAILED (1 attempts)" in build, build
    assert "has no builder replies for phase" in build, build
    debug = (repo / "docs" / "DEBUG_LOG.md").read_text()
    assert "## DBG-001" in debug and "p attempt 1 failed" in debug, debug
    assert "- Run: r1" in debug
    assert "has no builder replies for phase" in debug
    assert "- Debug: DBG-001" in build
