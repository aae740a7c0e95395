"""A phase approved after a sibling of its tier landed is merged onto the moved branch and
lands: the person is not asked a second time for the same change.

``autopack run`` runs in its own process, as a person starts it; the approval is
``autopack approve`` from another, once the sibling has landed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autopack
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.projection import RunView
from autopack.states import RUN_TERMINAL, PhaseState, RunState
from autopack.store import RunNotFound
from autopack.workspace import git

PLAN = """\
run: {id: r1, goal: Two phases of one tier}
tiers:
  - id: t
    phases:
      - id: tighten
        goal: Tighten the test of a
        scope: {paths: [tests/test_a.py]}
        tests: {command: "true"}
      - id: bump
        goal: Set B to 2
        scope: {paths: [b.py]}
        tests: {command: "true"}
"""


def edit(path: str, old: str, new: str) -> str:
    block = f"{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"
    return "      - |\n" + "".join(f"        {line}\n" for line in block.splitlines())


APPROVE = "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
SCRIPT = (
    "version: 1\nreplies:\n"
    "  tighten:\n    builder:\n"
    + edit("tests/test_a.py", "    assert True", "    assert 1 == 1")
    + APPROVE
    + "  bump:\n    builder:\n"
    + edit("b.py", "B = 1", "B = 2")
    + APPROVE
)


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(PLAN)
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


def wait_for(repo: Path, check: Callable[[RunView], bool], what: str) -> RunView:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            view = Runtime.open(repo).store.view("r1")
        except RunNotFound:
            view = None
        if view is not None and check(view):
            return view
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.timeout(600)
def test_approving_after_a_sibling_landed_lands_without_asking_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    model = f"scripted:{tmp_path / 'script.yaml'}"
    running = autopack_process(
        "run", str(tmp_path / "plan.yaml"), "-C", str(repo), "--model", model
    )
    try:
        view = wait_for(
            repo,
            lambda v: (
                v.phases["tighten"].state is PhaseState.AWAITING_APPROVAL
                and v.phases["bump"].state is PhaseState.COMPLETE
            ),
            "tighten waits for approval while bump lands",
        )
        asked = view.phases["tighten"].attempt
        approved = CliRunner().invoke(app, ["approve", "r1", "tighten", "-C", str(repo)])
        assert approved.exit_code == 0, approved.output
        view = wait_for(
            repo,
            lambda v: (
                v.state in RUN_TERMINAL
                or (
                    v.phases["tighten"].state is PhaseState.AWAITING_APPROVAL
                    and v.phases["tighten"].attempt > asked
                )
            ),
            "the run ends, or asks again",
        )
        assert view.phases["tighten"].state is not PhaseState.AWAITING_APPROVAL, (
            "the approved change was merged onto the moved branch and asked for approval again"
        )
        output, _ = running.communicate(timeout=300)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 0, output
    view = Runtime.open(repo).store.view("r1")
    assert view.state is RunState.SUCCEEDED
    assert view.phases["tighten"].state is PhaseState.COMPLETE
    assert Runtime.open(repo).store.run("r1").pending_approvals == 0
    approvals = [e for e in Runtime.open(repo).store.events("r1") if e.type == "approval_granted"]
    assert len(approvals) == 1
    head = git.rev_parse(repo, f"refs/heads/{view.branch}")
    assert head is not None
    assert git.git(repo, "show", f"{head}:b.py") == "B = 2"
    assert "1 == 1" in git.git(repo, "show", f"{head}:tests/test_a.py")
    trailers = git.trailers(repo, head)
    assert trailers["Autopack-Phase"] == "tighten"
    proof = json.loads(git.read_note(repo, head) or "[]")[-1]
    assert proof["approval"]["carried_from"] == asked
    assert proof["decision"]["decision"] == "PASS"
