"""A run cancelled while its Builder works, then resumed, asks the scripted model for the
same replies as a run that was never interrupted, and lands the same change.

The Builder's first reply is a ``run`` tool call that waits for a file the test writes;
the cancel comes from another process (``autopack cancel``) while it waits, exactly as a
person would cancel a run that seems stuck, and ``autopack resume`` continues it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autopack
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
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
EDIT = "a.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"


def script(go: Path) -> str:
    wait = f"while [ ! -f {go} ]; do sleep 0.1; done; echo ready"
    edit = "".join(f"        {line}\n" for line in EDIT.splitlines())
    return (
        "version: 1\nreplies:\n  p:\n    builder:\n"
        f"      - tool_calls: [{{name: run, arguments: {{command: {json.dumps(wait)}}}}}]\n"
        f"      - |\n{edit}"
        "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
    )


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    # The waiting command reads a file outside the worktree: no bubblewrap here.
    (repo / "autopack.toml").write_text('sandbox = "subprocess"\n')
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (root / "plan.yaml").write_text(PLAN)
    (root / "script.yaml").write_text(script(root / "go"))
    return repo


def autopack_process(*args: str) -> subprocess.Popen[str]:
    """``autopack`` as a person starts it, from this checkout's package."""
    source = str(Path(autopack.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "from autopack.cli import app; app()", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def replies_served(repo: Path, run_id: str) -> list[tuple[str, int, str]]:
    """(role, call index, reply) of every model call the run made, in order."""
    cassette = repo / ".autopack" / "runs" / run_id / "cassette.jsonl"
    entries = [json.loads(line) for line in cassette.read_text().splitlines()]
    return [
        (e["request"]["role"], e["request"]["call_index"], json.dumps(e["response"]["text"]))
        for e in entries
    ]


def builder_called(repo: Path) -> bool:
    """Whether run r1 has made its Builder's first model call (it then waits in its tool)."""
    if not (repo / ".autopack" / "runs" / "r1").exists():
        return False  # the run process has not stored the run yet
    events = Runtime.open(repo).store.events("r1")
    return any(e.type == "model_called" and e.data["role"] == "builder" for e in events)


def wait_for(check: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def test_a_cancel_during_a_builder_call_then_resume_asks_for_the_same_replies(
    tmp_path: Path,
) -> None:
    straight = make_repo(tmp_path / "straight")
    (tmp_path / "straight" / "go").write_text("")
    done = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "straight" / "plan.yaml"),
            "-C",
            str(straight),
            "--model",
            f"scripted:{tmp_path / 'straight' / 'script.yaml'}",
        ],
    )
    assert done.exit_code == 0, done.output
    uninterrupted = replies_served(straight, "r1")
    assert [role for role, _, _ in uninterrupted] == ["builder", "builder", "auditor"]

    root = tmp_path / "cancelled"
    repo = make_repo(root)
    model = f"scripted:{root / 'script.yaml'}"
    running = autopack_process("run", str(root / "plan.yaml"), "-C", str(repo), "--model", model)
    try:
        wait_for(lambda: builder_called(repo), "the Builder's first call")
        cancelled = CliRunner().invoke(app, ["cancel", "r1", "-C", str(repo)])
        assert cancelled.exit_code == 0, cancelled.output
        output, _ = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 130, output
    view = Runtime.open(repo).store.view("r1")
    assert view.state is RunState.CANCELLED
    assert view.phases["p"].state is not PhaseState.COMPLETE

    (root / "go").write_text("")
    resumed = CliRunner().invoke(app, ["resume", "r1", "-C", str(repo), "--model", model])
    assert resumed.exit_code == 0, resumed.output
    final = Runtime.open(repo).store.view("r1")
    assert final.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{final.branch}:a.py") == "A = 2"
    served = replies_served(repo, "r1")
    after_cancel = served[len(served) - len(uninterrupted) :]
    assert after_cancel == uninterrupted, served
    assert "has no builder reply" not in resumed.output


pytestmark = pytest.mark.timeout(600)


def killed_while_building(root: Path) -> Path:
    """A run whose ``autopack run`` process was killed with SIGKILL while its Builder's
    tool waited: recorded RUNNING, with nobody executing it."""
    repo = make_repo(root)
    model = f"scripted:{root / 'script.yaml'}"
    running = autopack_process("run", str(root / "plan.yaml"), "-C", str(repo), "--model", model)
    try:
        wait_for(lambda: builder_called(repo), "the Builder's first call")
    finally:
        running.kill()
        running.communicate(timeout=60)
        (root / "go").write_text("")  # the orphaned tool command ends
    assert Runtime.open(repo).store.view("r1").state is RunState.RUNNING
    return repo


def test_cancel_of_a_run_whose_executor_died_ends_it_at_once(tmp_path: Path) -> None:
    """``autopack cancel`` of a RUNNING run nobody executes: CANCELLED now, with the
    reason, and listed so (never counted as running again)."""
    repo = killed_while_building(tmp_path)
    cancelled = CliRunner().invoke(app, ["cancel", "r1", "-C", str(repo)])
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled r1 (no executor was running it)" in cancelled.output
    view = Runtime.open(repo).store.view("r1")
    assert view.state is RunState.CANCELLED
    listed = CliRunner().invoke(app, ["runs", "-C", str(repo)])
    assert "CANCELLED" in listed.output and "RUNNING" not in listed.output


def test_the_api_cancels_a_run_whose_executor_died_at_once(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from autopack.api import ApiConfig, create_app
    from autopack.store.keys import create_key

    repo = killed_while_building(tmp_path)
    api = create_app(ApiConfig(repo=repo))
    _, secret = create_key(api.state.ctx.rt.store.engine, "operator", "operate")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(api) as client:
        answer = client.post("/runs/r1/cancel", headers=auth, json={"reason": "stuck"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["state"] == "CANCELLED"
        shown = client.get("/runs/r1", headers=auth).json()
        metrics = client.get("/metrics", headers=auth).text
    assert (shown["run"]["state"], shown["executing"]) == ("CANCELLED", False)
    assert shown["run"]["reason"] == "stuck"
    assert 'autopack_runs{state="RUNNING"} 0' in metrics
    assert 'autopack_runs{state="CANCELLED"} 1' in metrics
