"""The intention's constraints are gate evidence: ``autopack run`` in a repository with
``.autopack/intention.yaml`` retries, then fails, a change that breaks one (a removed
public name, a frozen path, a changed dependency), and lands the same change without it.
The constraints are those recorded when the run was created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from autopilot_helpers import ADD_DEPENDENCY, autopack, commit_all, git, write

from autopack.engine.runtime import Runtime
from autopack.states import RunState

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
PYPROJECT = '[project]\nname = "calc"\nversion = "0"\ndependencies = []\n'
INTENTION = "north_star: A calculator.\nallowed_paths: [calc.py, pyproject.toml]\n"
DROP_SUB = """Dropping sub.

calc.py
<<<<<<< SEARCH


def sub(a, b):
    return a - b
=======
>>>>>>> REPLACE
"""
CASES = {
    "public-name": (
        'constraints: {public_names: ["calc.py:sub"]}\n',
        DROP_SUB,
        "public name calc.py:sub was removed",
    ),
    "frozen-path": ('constraints: {frozen_paths: ["calc.py"]}\n', DROP_SUB, "calc.py"),
    "dependencies": (
        "constraints: {frozen_dependencies: true}\n",
        ADD_DEPENDENCY,
        "pyproject.toml changes the declared",
    ),
}
REASON = "the change breaks a constraint of the project's intention"


def project(root: Path, intention: str | None) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = {"calc.py": CALC, "pyproject.toml": PYPROJECT}
    files["tests/test_calc.py"] = "from calc import add\n\n\ndef test_add():\n"
    files["tests/test_calc.py"] += "    assert add(1, 2) == 3\n"
    if intention is not None:
        files[".autopack/intention.yaml"] = intention
    write(root, files)
    (root / ".git/info/exclude").write_text(".autopack/\n")
    commit_all(root, "start")
    return root


def run(tmp_path: Path, repo: Path, build: str, attempts: int = 2) -> tuple[int, str]:
    path = "pyproject.toml" if "pyproject" in build else "calc.py"
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "run: {goal: Change the calculator}\ntiers:\n  - id: t1\n    phases:\n"
        f"      - id: change\n        goal: Change it\n        scope: {{paths: [{path}]}}\n"
    )
    approve = {"verdict": "approve", "summary": "Fine.", "issues": []}
    replies = {"change": {"builder": [build] * attempts, "auditor": [approve] * attempts}}
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"version": 1, "replies": replies}))
    result = autopack("run", str(plan), "-C", str(repo), "--model", f"scripted:{script}")
    return result.exit_code, result.output


def ended(repo: Path) -> tuple[Runtime, str]:
    rt = Runtime.open(repo)
    (run_id,) = [row.id for row in rt.store.list_runs()]
    return rt, run_id


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_that_breaks_a_constraint_is_retried_then_fails_and_lands_nothing(
    tmp_path: Path, case: str
) -> None:
    constraint, build, broken = CASES[case]
    repo = project(tmp_path / "calc", INTENTION + constraint)
    code, output = run(tmp_path, repo, build)
    assert code == 1, output
    gate_lines = [line for line in output.splitlines() if "gate RETRY" in line]
    assert len(gate_lines) == 2, output  # both attempts stopped by the gate
    assert all(REASON in line and broken in line for line in gate_lines), output
    rt, run_id = ended(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    assert git(repo, "rev-parse", view.branch) == git(repo, "rev-parse", "main")
    assert view.settings["intention_constraints"]  # what this run's gate checks


@pytest.mark.parametrize("case", ["public-name", "dependencies"])
def test_the_same_change_lands_where_no_constraint_forbids_it(tmp_path: Path, case: str) -> None:
    _, build, _ = CASES[case]
    for intention in (None, INTENTION):
        root = tmp_path / ("none" if intention is None else "loose")
        root.mkdir()
        repo = project(root / "calc", intention)
        code, output = run(root, repo, build, attempts=1)
        assert code == 0, output
        rt, run_id = ended(repo)
        view = rt.store.view(run_id)
        assert view.state is RunState.SUCCEEDED
        assert git(repo, "rev-parse", view.branch) != git(repo, "rev-parse", "main")


def test_constraints_are_those_recorded_when_the_run_was_created(tmp_path: Path) -> None:
    """Loosening the intention file after the run was created does not loosen its gate:
    the resumed run still refuses the change."""
    constraint, build, broken = CASES["public-name"]
    repo = project(tmp_path / "calc", INTENTION + constraint)
    code, output = run(tmp_path, repo, build, attempts=1)
    assert code == 1 and broken in output, output
    rt, run_id = ended(repo)
    recorded = rt.store.view(run_id).settings["intention_constraints"]
    (repo / ".autopack/intention.yaml").write_text(INTENTION)
    assert rt.store.view(run_id).settings["intention_constraints"] == recorded


def test_an_invalid_intention_refuses_the_run_and_creates_nothing(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc", INTENTION + "constraints: {frozen_paths: 3}\n")
    code, output = run(tmp_path, repo, DROP_SUB, attempts=1)
    assert code == 2, output
    assert "intention.yaml" in output and "frozen_paths" in output
    assert "Traceback" not in output
    assert git(repo, "branch", "--list", "autopack/*") == ""
    db = repo / ".autopack/autopack.db"
    if db.exists():
        assert Runtime.open(repo).store.list_runs() == []
