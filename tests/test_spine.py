"""The spine end to end: real git, real store, real edits, real test runs, scripted replies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
from autopack.workspace import git


def _git(repo: Path, *args: str) -> str:
    return git.git(repo, *args)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Run the demo once for every assertion below; returns repo, run id, CLI output."""
    target = tmp_path_factory.mktemp("demo") / "repo"
    result = CliRunner().invoke(app, ["demo", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    rt = Runtime.open(target)
    (row,) = rt.store.list_runs()
    return target, row.id, result.output


def test_demo_run_succeeds_with_one_commit_per_phase(demo: tuple[Path, str, str]) -> None:
    repo, run_id, output = demo
    rt = Runtime.open(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert all(p.state is PhaseState.COMPLETE for p in view.phases.values())
    commits = git.log_commits(repo, view.base_commit, view.branch)
    assert len(commits) == 3
    phases = [git.trailers(repo, c)["Autopack-Phase"] for c in commits]
    assert phases == ["slugify", "word-frequencies", "cli"]
    for commit, phase in zip(commits, view.phases.values(), strict=True):
        trailers = git.trailers(repo, commit)
        assert trailers["Autopack-Run"] == run_id
        assert trailers["Autopack-Proof"] == phase.proof_hash
        assert len(trailers["Autopack-Proof"]) == 64
    assert "scripted" in output


def test_demo_first_attempt_rejected_by_gate_with_reason(demo: tuple[Path, str, str]) -> None:
    repo, run_id, _ = demo
    rt = Runtime.open(repo)
    gates = [
        e.data
        for e in rt.store.events(run_id)
        if e.type == "step_completed" and e.data["step"] == "gate"
    ]
    retried = [g for g in gates if g["phase_id"] == "word-frequencies"]
    assert [g["attempt"] for g in retried] == [1, 2]
    first = retried[0]["result"]
    assert first["decision"] == "RETRY"
    assert any("test_word_count_keeps_hyphenated_words_whole" in r for r in first["reasons"])
    assert retried[1]["result"]["decision"] == "PASS"
    prompt = rt.run_dir(run_id) / "phases" / "word-frequencies" / "2" / "prompt.txt"
    assert "test_word_count_keeps_hyphenated_words_whole" in prompt.read_text()


def test_demo_branch_head_passes_its_tests_and_main_is_untouched(
    demo: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, run_id, _ = demo
    rt = Runtime.open(repo)
    view = rt.store.view(run_id)
    assert _git(repo, "rev-parse", "main") == view.base_commit
    assert _git(repo, "status", "--porcelain") == ""
    checkout = tmp_path / "head"
    _git(repo, "worktree", "add", "--detach", str(checkout), view.branch)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "10 passed" in tests.stdout
    assert not any(rt.worktree(run_id, phase).exists() for phase in view.phases)


def _repo_with_plan(tmp_path: Path, plan: str, script: str) -> tuple[Path, Path, Path]:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "inside.py").write_text("VALUE = 1\n")
    (repo / "outside.py").write_text("SECRET = 1\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(plan)
    (tmp_path / "script.yaml").write_text(script)
    return repo, tmp_path / "plan.yaml", tmp_path / "script.yaml"


OUT_OF_SCOPE_PLAN = """\
run: {goal: stay in scope, max_attempts: 1}
tiers:
  - id: only
    phases:
      - id: edit-inside
        goal: Change inside.py only
        scope: {paths: [inside.py]}
        tests: {command: "true"}
"""

OUT_OF_SCOPE_SCRIPT = """\
version: 1
replies:
  edit-inside:
    builder:
      - |
        inside.py
        <<<<<<< SEARCH
        VALUE = 1
        =======
        VALUE = 2
        >>>>>>> REPLACE

        outside.py
        <<<<<<< SEARCH
        SECRET = 1
        =======
        SECRET = 2
        >>>>>>> REPLACE
"""


def test_edits_outside_scope_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    repo, plan, script = _repo_with_plan(tmp_path, OUT_OF_SCOPE_PLAN, OUT_OF_SCOPE_SCRIPT)
    result = CliRunner().invoke(
        app, ["run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}"]
    )
    assert result.exit_code == 1, result.output
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    view = rt.store.view(row.id)
    phase = view.phases["edit-inside"]
    assert view.state is RunState.FAILED and phase.state is PhaseState.FAILED
    applied = phase.steps["apply"]
    assert applied["applied"] is False
    assert "outside.py" in applied["feedback"]
    assert git.log_commits(repo, view.base_commit, view.branch) == []
    assert (repo / "inside.py").read_text() == "VALUE = 1\n"
    assert (repo / "outside.py").read_text() == "SECRET = 1\n"


def test_script_running_out_fails_the_phase_with_a_clear_reason(tmp_path: Path) -> None:
    plan_text = OUT_OF_SCOPE_PLAN.replace("max_attempts: 1", "max_attempts: 3")
    script = "version: 1\nreplies:\n  edit-inside:\n    builder: []\n"
    repo, plan, script_path = _repo_with_plan(tmp_path, plan_text, script)
    result = CliRunner().invoke(
        app, ["run", str(plan), "--repo", str(repo), "--model", f"scripted:{script_path}"]
    )
    assert result.exit_code == 1, result.output
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    reason = rt.store.view(row.id).phases["edit-inside"].reason
    assert "no builder reply #1" in reason
