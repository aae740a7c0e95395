"""A pull request's reviews answer a phase waiting for approval, while ``autopack run``
waits in its own process: the author's own approval is ignored, a reviewer's request
for changes sends the phase back with the review's text as the Builder's feedback, a
reviewer's approval lands it; an old review never answers a newer wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.forge.conftest import TOKEN, pr_args
from tests.forge.fakeforge import FakeForge
from typer.testing import CliRunner

import autopack
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.projection import RunView
from autopack.states import RUN_TERMINAL, PhaseState, RunState
from autopack.store import RunNotFound

PLAN = """\
run: {id: r1, goal: Tighten the test of a and set B}
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


APPROVE = "      - {verdict: approve, summary: ok, issues: []}\n"
SCRIPT = (
    "version: 1\nreplies:\n  tighten:\n    builder:\n"
    + edit("tests/test_a.py", "    assert True", "    assert 1 == 1")
    + edit("tests/test_a.py", "    assert True", "    assert 2 == 2")
    + "    auditor:\n"
    + APPROVE * 2
    + "  bump:\n    builder:\n"
    + edit("b.py", "B = 1", "B = 2")
    + "    auditor:\n"
    + APPROVE
)


@pytest.fixture
def waiting(tmp_path: Path) -> Iterator[tuple[Path, FakeForge, subprocess.Popen[str]]]:
    repo, remote = tmp_path / "repo", tmp_path / "remote.git"
    (repo / "tests").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "push", "-q", "origin", "main"], check=True)
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    source = str(Path(autopack.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    model = f"scripted:{tmp_path / 'script.yaml'}"
    command = [sys.executable, "-c", "from autopack.cli import app; app()", "run"]
    running = subprocess.Popen(
        [*command, str(tmp_path / "plan.yaml"), "-C", str(repo), "--model", model],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    fake = FakeForge(remote=remote, token=TOKEN).start()
    try:
        yield repo, fake, running
    finally:
        running.kill()
        running.communicate()
        fake.stop()


def wait_for(repo: Path, check: Callable[[RunView], bool], what: str) -> RunView:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            view = Runtime.open(repo).store.view("r1")
        except RunNotFound:
            view = None
        if view is not None and check(view):
            return view
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def awaiting(attempt: int) -> Callable[[RunView], bool]:
    """tighten waits in its attempt ``attempt`` and bump, its sibling, has landed."""

    def check(view: RunView) -> bool:
        phase = view.phases["tighten"]
        landed = view.phases["bump"].state is PhaseState.COMPLETE
        return landed and phase.state is PhaseState.AWAITING_APPROVAL and phase.attempt == attempt

    return check


def pr(forge: FakeForge, repo: Path, *extra: str) -> str:
    done = CliRunner().invoke(app, pr_args(forge, repo, "r1", *extra), env={"GITHUB_TOKEN": TOKEN})
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.timeout(600)
def test_reviews_answer_the_waiting_phase(
    waiting: tuple[Path, FakeForge, subprocess.Popen[str]],
) -> None:
    repo, forge, running = waiting
    wait_for(repo, awaiting(1), "tighten waits for approval")
    assert "pull request #1 opened" in pr(forge, repo)
    body = forge.pulls[1]["body"]
    assert "### Waiting for your approval" in body and "`tighten` (attempt 1)" in body
    assert "1 file(s) +1 -1" in body  # the waiting attempt's change, from its diff

    forge.add_review(1, forge.author, "APPROVED", "lgtm (my own)")
    forge.add_review(1, "mallory", "APPROVED", "drive-by")  # may only read the repository
    out = pr(forge, repo, "--sync-approvals")
    assert "by autopack-bot: written by the pull request's author" in out
    assert "by mallory: its writer may not write to the repository" in out
    time.sleep(1.0)  # the executor polls: an approval would have been acted on by now
    view = Runtime.open(repo).store.view("r1")
    assert view.phases["tighten"].state is PhaseState.AWAITING_APPROVAL

    forge.add_review(1, "carol", "CHANGES_REQUESTED", "Use 2 == 2 instead")
    out = pr(forge, repo, "--sync-approvals")
    assert "sent back tighten" in out
    view = wait_for(repo, awaiting(2), "tighten's second attempt waits")
    prompt = repo / ".autopack" / "runs" / "r1" / "phases" / "tighten" / "2" / "prompt.txt"
    assert "Use 2 == 2 instead" in prompt.read_text()

    out = pr(forge, repo, "--sync-approvals")  # carol's review is spent: nothing answered
    assert "sent back" not in out and "approved" not in out
    forge.add_review(1, "bob", "APPROVED", "")
    out = pr(forge, repo, "--sync-approvals")
    assert "approved tighten (review" in out and "by bob" in out
    view = wait_for(repo, lambda v: v.state in RUN_TERMINAL, "the run ends")
    assert view.state is RunState.SUCCEEDED
    phase = view.phases["tighten"]
    assert phase.approval and phase.approval["by"] == "github:bob"
    events = [json.loads(line) for line in (repo / ".autopack/runs/r1/events.jsonl").open()]
    kinds = [e["type"] for e in events]
    assert kinds.count("approval_granted") == 1 and kinds.count("approval_rejected") == 1
    assert running.wait(timeout=120) == 0
    assert TOKEN not in (repo / ".autopack/runs/r1/events.jsonl").read_text()


@pytest.mark.timeout(600)
def test_merge_request_approvals_answer_the_waiting_phase_on_gitlab(
    waiting: tuple[Path, FakeForge, subprocess.Popen[str]],
) -> None:
    repo, forge, running = waiting
    wait_for(repo, awaiting(1), "tighten waits for approval")
    args = ["pr", "r1", "-C", str(repo), "--forge", "gitlab", "--api-url", forge.url]
    args += ["--repository", forge.repository]

    def pr_gitlab(*extra: str) -> str:
        done = CliRunner().invoke(app, [*args, *extra], env={"GITLAB_TOKEN": TOKEN})
        assert done.exit_code == 0, done.output
        return done.output

    assert "merge request !1 opened" in pr_gitlab()
    forge.add_gitlab_note(1, forge.author, 2, "approved this merge request")  # the token's own
    forge.add_gitlab_note(1, "erin", 32, "approved this merge request")  # a Reporter
    out = pr_gitlab("--sync-approvals")
    assert "by autopack-bot: written by the pull request's author" in out
    assert "by erin: its writer may not write to the repository" in out
    assert "approved tighten" not in out
    forge.add_gitlab_note(1, "dana", 31, "approved this merge request")  # a Developer
    out = pr_gitlab("--sync-approvals")
    assert "approved tighten (review" in out and "by dana" in out
    view = wait_for(repo, lambda v: v.state in RUN_TERMINAL, "the run ends")
    assert view.state is RunState.SUCCEEDED
    assert view.phases["tighten"].approval["by"] == "gitlab:dana"  # type: ignore[index]
    assert running.wait(timeout=120) == 0
