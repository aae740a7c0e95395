"""Budgets and infrastructure: a run that hits its budget stops and says which; a sandbox
that cannot start is retried without costing an attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autopack.engine.create import create_run
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


def test_a_sandbox_that_fails_to_start_costs_no_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "script.yaml").write_text(SCRIPT)
    rt = Runtime.open(repo, model_override=f"scripted:{tmp_path / 'script.yaml'}")
    plan = PLAN.replace("  budget: {model_calls: 1}\n", "").split("  - id: two")[0]
    run_id = create_run(rt, parse_plan_text(plan), plan_source="plan.yaml")
    real_run = rt.sandbox.run
    failures = [OSError("bwrap: cannot create namespace")] * 2

    def flaky_start(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_run(*args, **kwargs)

    monkeypatch.setattr(rt.sandbox, "run", flaky_start)
    monkeypatch.setattr("autopack.engine.local.time.sleep", lambda seconds: None)
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    phase = rt.store.view(run_id).phases["first"]
    assert not failures, "both start failures were met"
    assert (phase.state, phase.attempt) == (PhaseState.COMPLETE, 1)
