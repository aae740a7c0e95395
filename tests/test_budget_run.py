"""A run that hits its budget fails the phase with reason budget, stops cleanly and says which."""

from __future__ import annotations

from pathlib import Path

from autopack.engine import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import parse_plan_text
from autopack.states import PhaseState, RunState
from autopack.workspace import git

PLAN = """\
run:
  goal: two phases, room for one model call
  budget: {model_calls: 1}
tiers:
  - id: one
    phases:
      - {id: first, goal: change a, scope: {paths: [a.py]}, tests: {command: "true"}}
  - id: two
    phases:
      - {id: second, goal: change b, scope: {paths: [b.py]}, tests: {command: "true"}}
"""

SCRIPT = """\
version: 1
replies:
  first:
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


def test_the_call_that_does_not_fit_is_refused_and_the_run_stops(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "script.yaml").write_text(SCRIPT)
    rt = Runtime.open(repo, model_override=f"scripted:{tmp_path / 'script.yaml'}")
    run_id = create_run(rt, parse_plan_text(PLAN), plan_source="plan.yaml")

    assert LocalExecutor(rt).execute(run_id) is RunState.FAILED

    view = rt.store.view(run_id)
    assert view.spend.model_calls == 1, "the refused Auditor call was never made"
    first = view.phases["first"]
    assert first.state is PhaseState.FAILED
    assert first.reason.startswith("budget:") and "model_calls" in first.reason
    second = view.phases["second"]
    assert (second.state, second.attempt) == (PhaseState.QUEUED, 0), "nothing started after"
    assert "model_calls" in view.reason
    assert git.log_commits(repo, view.base_commit, view.branch) == []
