"""A run that failed on its provider (the server answers every call with an error) is
written to the ledgers with the attempt that ran, the reason, and a debug entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeserver import FakeServer, Fault
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
KEY = "sk-test-ledgers-0123456789abcdefghij"


@pytest.mark.timeout(600)
def test_a_provider_failure_is_recorded_with_its_attempt_and_a_debug_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        server.default["openai"] = Fault(500, message="the model is overloaded")
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / "a.py").write_text("A = 1\n")
        (repo / "autopack.toml").write_text(
            f'[models.providers.openai]\nbase_url = "{server.openai_url}"\ntimeout_seconds = 5\n'
        )
        git.git(repo, "init", "-q", "-b", "main")
        git.git(repo, "add", "-A")
        git.git(repo, "commit", "-q", "-m", "start")
        (tmp_path / "plan.yaml").write_text(PLAN)
        runner = CliRunner()
        args = ["run", str(tmp_path / "plan.yaml"), "-C", str(repo), "--model", "openai:gpt-4.1"]
        done = runner.invoke(app, args)
    assert done.exit_code == 1, done.output
    tidied = runner.invoke(app, ["tidy", "--repo", str(repo)])
    assert tidied.exit_code == 0, tidied.output
    build = (repo / "docs" / "BUILD_HISTORY.md").read_text()
    assert "p FAILED (1 attempts): infrastructure: build failed" in build, build
    assert "- Debug: DBG-001" in build
    debug = (repo / "docs" / "DEBUG_LOG.md").read_text()
    assert "p attempt 1 failed" in debug and "infrastructure: build failed" in debug, debug
    assert KEY not in build + debug
