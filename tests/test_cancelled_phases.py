"""A cancelled run shows the phases it stopped as CANCELLED, never as still working, in
``autopack status``, ``autopack runs`` and the API; ``autopack resume`` carries on with
the same attempt where it stopped.

The phase is stopped while its base tests run (before its Builder is asked): the test
command waits for a file the test writes only after the cancel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import autopack
from autopack.api import ApiConfig, create_app
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PHASE_ACTIVE, PhaseState, RunState
from autopack.store.keys import create_key
from autopack.workspace import git

PLAN = """\
run: {id: r1, goal: Change a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Set A to 2
        scope: {paths: [a.py]}
        tests: {command: "while [ ! -f %s ]; do sleep 0.1; done"}
"""
SCRIPT = """\
version: 1
replies:
  p:
    builder:
      - |
        a.py
        <<<<<<< SEARCH
        A = 1
        =======
        A = 2
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""
WORKING = {state.value for state in PHASE_ACTIVE}


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    # The test command reads a file outside the worktree: no bubblewrap here.
    (repo / "autopack.toml").write_text('sandbox = "subprocess"\n')
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(PLAN % (tmp_path / "go"))
    (tmp_path / "script.yaml").write_text(SCRIPT)
    return repo


def autopack_process(*args: str) -> subprocess.Popen[str]:
    """``autopack`` as a person starts it, from this checkout's package."""
    source = str(Path(autopack.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "from autopack.cli import app; app()", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def cli(*args: str) -> str:
    done = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    return done.output


def api_phases(repo: Path) -> dict[str, str]:
    api = create_app(ApiConfig(repo=repo, executor=False))
    with TestClient(api) as client:
        _, secret = create_key(api.state.ctx.rt.store.engine, "reader", "read")
        found = client.get("/runs/r1", headers={"Authorization": f"Bearer {secret}"})
        assert found.status_code == 200, found.text
        body = found.json()
    return {p["id"]: p["state"] for tier in body["tiers"] for p in tier["phases"]}


@pytest.mark.timeout(600)
def test_a_cancelled_run_shows_its_stopped_phase_cancelled_and_resumes_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    model = f"scripted:{tmp_path / 'script.yaml'}"
    running = autopack_process(
        "run", str(tmp_path / "plan.yaml"), "-C", str(repo), "--model", model
    )
    try:
        deadline = time.monotonic() + 300
        while Runtime.open(repo).store.events("r1")[-1:] == [] or (
            Runtime.open(repo).store.view("r1").phases["p"].step != "build"
        ):
            assert time.monotonic() < deadline, "the tests never started"
            time.sleep(0.1)
        cli("cancel", "r1", "-C", str(repo))
        output, _ = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 130, output

    view = Runtime.open(repo).store.view("r1")
    assert view.state is RunState.CANCELLED
    assert view.phases["p"].state is PhaseState.CANCELLED
    status = cli("status", "r1", "-C", str(repo))
    listed = cli("runs", "-C", str(repo))
    for shown in (status, listed):
        assert not any(state in shown for state in WORKING), shown
    assert "CANCELLED" in status
    assert api_phases(repo) == {"p": "CANCELLED"}

    (tmp_path / "go").write_text("")
    resumed = CliRunner().invoke(app, ["resume", "r1", "-C", str(repo), "--model", model])
    assert resumed.exit_code == 0, resumed.output
    final = Runtime.open(repo).store.view("r1")
    assert final.state is RunState.SUCCEEDED
    assert final.phases["p"].attempt == 1  # the stopped attempt went on; none was lost
    assert git.git(repo, "show", f"{final.branch}:a.py") == "A = 2"
    assert api_phases(repo) == {"p": "COMPLETE"}
