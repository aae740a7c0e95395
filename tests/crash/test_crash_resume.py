"""kill -9 at 20 points of a run, then resume: the same result as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from autopack.engine.create import create_run
from autopack.engine.local import LeaseHeld, LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import parse_plan_text
from autopack.states import RunState
from autopack.workspace import git

HERE = Path(__file__).parent

PLAN = """\
run: {goal: "three phases, one retried"}
tiers:
  - id: one
    phases:
      - {id: first, goal: change a, scope: {paths: [a.py]}, tests: {command: "true"}}
  - id: two
    phases:
      - {id: second, goal: change b, scope: {paths: [b.py]}, tests: {command: "true"}}
  - id: three
    phases:
      - {id: third, goal: add c, scope: {paths: [c.py]}, tests: {command: "true"}}
"""


def edit(path: str, old: str, new: str) -> str:
    lines = [path, "<<<<<<< SEARCH", *old.splitlines(), "=======", *new.splitlines()]
    return "\n".join([*lines, ">>>>>>> REPLACE", ""])


def replies(*texts: str) -> str:
    out = ""
    for text in texts:
        out += "      - |\n" + "".join(f"        {line}\n" for line in text.splitlines())
    return out


APPROVE = "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
SCRIPT = (
    "version: 1\nreplies:\n"
    + "  first:\n    builder:\n"
    + replies(edit("a.py", "A = 1", "A = 2"))
    + APPROVE
    + "  second:\n    builder:\n"
    # The first attempt's edit does not match: the gate sends it back.
    + replies(edit("b.py", "B = 7", "B = 8"), edit("b.py", "B = 1", "B = 2"))
    + APPROVE
    + "  third:\n    builder:\n"
    + replies(edit("c.py", "", "C = 3"))
    + APPROVE
)


def make_run(root: Path) -> tuple[Runtime, str]:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (root / "script.yaml").write_text(SCRIPT)
    rt = Runtime.open(repo, model_override=f"scripted:{root / 'script.yaml'}")
    return rt, create_run(rt, parse_plan_text(PLAN), plan_source="plan.yaml")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """The final tree and event count of an uninterrupted run."""
    rt, run_id = make_run(tmp_path_factory.mktemp("reference"))
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    view = rt.store.view(run_id)
    return git.commit_tree(rt.repo, view.branch), view.last_seq


# 17 points by event count, spread over the whole log (every step kind is among them),
# and 3 right after a phase commit moved the branch but before its event.
POINTS = [("event", n) for n in (2, 3, 4, 5, 6, 7, 9, 11, 13, 15, 18, 21, 25, 29, 33, 38, 43)]
POINTS += [("commit", n) for n in (1, 2, 3)]


@pytest.mark.parametrize(("kind", "point"), POINTS, ids=[f"{k}-{n}" for k, n in POINTS])
def test_kill_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, reference: tuple[str, int], kind: str, point: int
) -> None:
    rt, run_id = make_run(tmp_path)
    killed = subprocess.run(
        [sys.executable, str(HERE / "crash_executor.py"), str(rt.repo), run_id, kind, str(point)],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    before = rt.store.view(run_id).last_seq

    assert LocalExecutor(Runtime.open(rt.repo)).execute(run_id) is RunState.SUCCEEDED

    events = rt.store.events(run_id)
    view = rt.store.view(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) > before
    completed = Counter(
        (e.data["phase_id"], e.data["attempt"], e.data["step"])
        for e in events
        if e.type == "step_completed"
    )
    assert max(completed.values()) == 1, "a recorded step was done again"
    commits = git.log_commits(rt.repo, view.base_commit, view.branch)
    phases = [git.trailers(rt.repo, c)["Autopack-Phase"] for c in commits]
    assert phases == ["first", "second", "third"]
    assert git.commit_tree(rt.repo, view.branch) == reference[0]
    assert not any(rt.worktree(run_id, p).exists() for p in view.phases)


def test_a_second_executor_refuses_a_live_lease_and_takes_over_a_stale_one(
    tmp_path: Path,
) -> None:
    rt, run_id = make_run(tmp_path)
    assert rt.store.acquire_lease(run_id, "elsewhere:1", ttl_s=60, now=time.time()) is None
    with pytest.raises(LeaseHeld, match="elsewhere:1"):
        LocalExecutor(rt).execute(run_id)
    assert rt.store.view(run_id).last_seq == 1, "the refused executor wrote nothing"
    # The other executor stopped renewing: its lease ran out a minute ago.
    assert rt.store.acquire_lease(run_id, "elsewhere:1", ttl_s=60, now=time.time() - 120) is None
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
