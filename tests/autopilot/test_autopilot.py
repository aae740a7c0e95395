"""``autopack autopilot`` on a real repository with a scripted Planner and Builder: it
closes the gaps over several iterations on its own branch and stops when the criteria
hold; it stops on its iteration budget, on no progress, and for a person whenever a plan
is not low risk inside the allowed paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from autopilot_helpers import ADD_DEPENDENCY, autopack, commit_all, git, write

from autopack.store import SqlStore

INTENTION = """north_star: A calculator with powers, documented.
success_criteria:
  tests: [tests/test_power.py::test_power]
  files: [docs/usage.md]
allowed_paths: [calc.py, "tests/**", "docs/**"]
out_of_scope: ["vendor/**"]
budgets: {iterations: %d}
"""
PLAN = """run: {goal: "%s"}
tiers:
  - id: t1
    phases:
      - id: %s
        goal: %s
        scope: {paths: [%s]}
"""
BUILD_POWER = """Adding power() and its test.

calc.py
<<<<<<< SEARCH
def add(a, b):
    return a + b
=======
def add(a, b):
    return a + b


def power(a, b):
    return a**b
>>>>>>> REPLACE

tests/test_power.py
<<<<<<< SEARCH
=======
from calc import power


def test_power():
    assert power(2, 3) == 8
>>>>>>> REPLACE
"""
BUILD_DOCS = """Writing the usage page.

docs/usage.md
<<<<<<< SEARCH
=======
# Usage

add(a, b) and power(a, b).
>>>>>>> REPLACE
"""
BUILD_NOTES = """Notes only.

docs/notes.md
<<<<<<< SEARCH
=======
Some notes.
>>>>>>> REPLACE
"""
APPROVE = {"verdict": "approve", "summary": "Fine.", "issues": []}


def project(root: Path, iterations: int = 4) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(
        root,
        {
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
            ".autopack/intention.yaml": INTENTION % iterations,
        },
    )
    (root / ".git/info/exclude").write_text(".autopack/\n")
    commit_all(root, "start")
    return root


def script(tmp_path: Path, plans: list[str], builders: dict[str, str]) -> Path:
    replies: dict[str, Any] = {"plan": {"planner": plans}}
    for phase, reply in builders.items():
        replies[phase] = {"builder": [reply], "auditor": [APPROVE]}
    path = tmp_path / "script.yaml"
    path.write_text(json.dumps({"version": 1, "replies": replies}))  # JSON is YAML
    return path


def plan(phase: str, paths: str, risk: str = "low") -> str:
    text = PLAN % (f"Close gaps: {phase}", phase, f"Do {phase}", paths)
    return text + f"        risk: {risk}\n"


def journal(repo: Path) -> list[dict[str, Any]]:
    """The one autopilot's events, as the store keeps them: type and data."""
    (row,) = autopilots(repo)
    store = SqlStore(f"sqlite:///{repo / '.autopack/autopack.db'}")
    try:
        return [{"event": e.type, **e.data} for e in store.autopilots.events(row["id"])]
    finally:
        store.close()


def autopilots(repo: Path) -> list[dict[str, Any]]:
    if not (repo / ".autopack/autopack.db").exists():
        return []
    listed = autopack("autopilot", "status", "-C", str(repo), "--json")
    assert listed.exit_code == 0, listed.output
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return rows


def status(repo: Path, pilot_id: str) -> dict[str, Any]:
    shown = autopack("autopilot", "status", pilot_id, "-C", str(repo), "--json")
    assert shown.exit_code == 0, shown.output
    data: dict[str, Any] = json.loads(shown.stdout)
    return data


def branch_of(output: str) -> str:
    return output.split("branch: ", 1)[1].split()[0]


ITERATION = [
    "iteration_began",
    "plan_drafted",
    "plan_approved",
    "iteration_run_finished",
    "iteration_ended",
]


def test_the_autopilot_closes_the_gaps_over_iterations_and_stops_when_criteria_hold(
    tmp_path: Path,
) -> None:
    repo = project(tmp_path / "calc")
    head = git(repo, "rev-parse", "HEAD")
    model = script(
        tmp_path,
        [plan("power", "calc.py, tests/test_power.py"), plan("docs", "docs/usage.md")],
        {"power": BUILD_POWER, "docs": BUILD_DOCS},
    )
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ": criteria met" in result.stdout
    branch = branch_of(result.stdout)
    assert "def power" in git(repo, "show", f"{branch}:calc.py")
    assert git(repo, "show", f"{branch}:docs/usage.md").startswith("# Usage")
    # the person's branch and working copy are untouched
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    events = journal(repo)
    assert [e["event"] for e in events] == [
        "autopilot_started",
        *ITERATION,
        *ITERATION,
        "autopilot_stopped",
    ]
    finished = [e for e in events if e["event"] == "iteration_run_finished"]
    assert [e["state"] for e in finished] == ["SUCCEEDED"] * 2
    assert events[-1]["reason"] == "criteria met" and events[-1]["iterations"] == 2
    approvals = [e for e in events if e["event"] == "plan_approved"]
    assert [(e["by"], e["auto"]) for e in approvals] == [("policy", True)] * 2
    began = [e for e in events if e["event"] == "iteration_began"]
    ended = [e for e in events if e["event"] == "iteration_ended"]
    assert [e["counts"].get("criterion", 0) for e in began] == [2, 1]
    assert [(e["counts"].get("criterion", 0), e["closed"], e["landed"]) for e in ended] == [
        (1, 1, True),
        (0, 1, True),
    ]
    shown = status(repo, events[0]["branch"].rsplit("-", 1)[1])
    assert shown["state"] == "STOPPED" and shown["stop_reason"] == "criteria met"
    assert [it["run_id"] for it in shown["iterations"]] == shown["runs"]
    assert shown["model_calls"] == 6  # a Planner, a Builder and an Auditor call per iteration
    runs = autopack("runs", "-C", str(repo))
    assert runs.stdout.count("SUCCEEDED") == 2 and "autopilot-" in runs.stdout


@pytest.mark.parametrize(
    ("paths", "risk", "why"),
    [
        ("vendor/lib.py", "low", "vendor/lib.py, outside the allowed paths"),
        ("docs/usage.md", "high", "phase docs is high risk"),
    ],
)
def test_a_plan_outside_the_policy_waits_for_a_person_and_nothing_runs(
    tmp_path: Path, paths: str, risk: str, why: str
) -> None:
    repo = project(tmp_path / "calc")
    model = script(tmp_path, [plan("docs", paths, risk)], {"docs": BUILD_DOCS})
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve", "--no-wait")  # fmt: skip
    assert result.exit_code == 1
    assert "needs a person" in result.stdout and why in result.stdout
    assert "runs: none" in result.stdout
    review = result.stdout.split("plan for review: ", 1)[1].split()[0]
    assert "id: docs" in Path(review).read_text()
    assert "autopilot-" not in autopack("runs", "-C", str(repo)).stdout  # no run was created
    events = [e["event"] for e in journal(repo)]
    assert events == [
        "autopilot_started", "iteration_began", "plan_drafted", "plan_approval_requested"
    ]  # fmt: skip
    (row,) = autopilots(repo)
    assert row["state"] == "AWAITING_APPROVAL" and row["stop_reason"] == ""


def test_without_auto_approval_every_plan_waits_for_a_person(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = script(tmp_path, [plan("docs", "docs/usage.md")], {"docs": BUILD_DOCS})
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}", "--no-wait")
    assert result.exit_code == 1
    assert "needs a person (auto-approval is off)" in result.stdout


def test_the_iteration_budget_is_never_exceeded(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc", iterations=1)
    model = script(
        tmp_path,
        [plan("power", "calc.py, tests/test_power.py"), plan("docs", "docs/usage.md")],
        {"power": BUILD_POWER, "docs": BUILD_DOCS},
    )
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve")  # fmt: skip
    assert result.exit_code == 1
    assert ": iterations spent" in result.stdout
    assert [e["event"] for e in journal(repo)].count("iteration_run_finished") == 1


def test_an_iteration_that_closes_no_gap_stops_the_loop(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = script(
        tmp_path,
        [plan("notes", "docs/notes.md"), plan("docs", "docs/usage.md")],
        {"notes": BUILD_NOTES, "docs": BUILD_DOCS},
    )
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve")  # fmt: skip
    assert result.exit_code == 1
    assert ": no progress (no gap closed)" in result.stdout
    assert [e["event"] for e in journal(repo)].count("iteration_run_finished") == 1


BUILD_DROP_SUB = """Replacing sub, which nothing uses, by power.

calc.py
<<<<<<< SEARCH
def sub(a, b):
    return a - b
=======
def power(a, b):
    return a**b
>>>>>>> REPLACE

tests/test_power.py
<<<<<<< SEARCH
=======
from calc import power


def test_power():
    assert power(2, 3) == 8
>>>>>>> REPLACE
"""


@pytest.mark.parametrize(
    ("constraint", "build", "broken"),
    [
        (
            'constraints: {public_names: ["calc.py:sub"]}\n',
            BUILD_DROP_SUB,
            "calc.py:sub was removed",
        ),
        ("constraints: {frozen_dependencies: true}\n", None, "pyproject.toml changes the declared"),
    ],
    ids=["public-name", "dependencies"],
)
def test_a_change_that_breaks_a_constraint_does_not_move_the_autopilot_branch(
    tmp_path: Path, constraint: str, build: str | None, broken: str
) -> None:
    """The run's gate refuses the change (the constraints are gate evidence): the run
    fails, the autopilot sees no progress and its branch stays where it was."""
    repo = project(tmp_path / "calc")
    pyproject = '[project]\nname = "calc"\nversion = "0"\ndependencies = []\n'
    calc = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    write(repo, {"pyproject.toml": pyproject, "calc.py": calc})
    commit_all(repo, "pyproject, sub")
    intention = (
        (repo / ".autopack/intention.yaml")
        .read_text()
        .replace('calc.py, "tests/**"', 'calc.py, pyproject.toml, "tests/**"')
    )
    write(repo, {".autopack/intention.yaml": intention + constraint})
    phase, paths = (
        ("power", "calc.py, tests/test_power.py") if build else ("deps", "pyproject.toml")
    )
    model = script(tmp_path, [plan(phase, paths)], {phase: build or ADD_DEPENDENCY})
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no progress (the run landed nothing)" in result.stdout
    events = journal(repo)
    finished = [e for e in events if e["event"] == "iteration_run_finished"]
    assert [e["state"] for e in finished] == ["FAILED"]
    run_id = finished[0]["run_id"]
    shown = autopack("show", run_id, phase, "--attempt", "1", "-C", str(repo), "--json")
    assert "intention" in shown.stdout and broken in shown.stdout, shown.output
    branch = branch_of(result.stdout)
    assert git(repo, "rev-parse", branch) == git(repo, "rev-parse", "main")


def test_the_total_budget_is_never_exceeded(tmp_path: Path) -> None:
    """Three model calls in all: the Planner's, then the run's Builder and Auditor (the run
    gets what is left as its own cap); the next iteration has nothing left."""
    repo = project(tmp_path / "calc")
    intention = (repo / ".autopack/intention.yaml").read_text()
    write(repo, {".autopack/intention.yaml": intention.replace(
        "budgets: {iterations: 4}", "budgets: {iterations: 4, total: {model_calls: 3}}"
    )})  # fmt: skip
    model = script(
        tmp_path,
        [plan("power", "calc.py, tests/test_power.py"), plan("docs", "docs/usage.md")],
        {"power": BUILD_POWER, "docs": BUILD_DOCS},
    )
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert ": budget spent" in result.stdout
    events = journal(repo)
    finished = [e for e in events if e["event"] == "iteration_run_finished"]
    assert [(e["state"], e["model_calls"]) for e in finished] == [("SUCCEEDED", 2)]
    plan_file = next(e["plan_path"] for e in events if e["event"] == "plan_drafted")
    text = Path(plan_file).read_text()
    assert "model_calls: 2" in text  # the run's cap: 3 - the Planner's 1
    # the run's goal, which the Builder and the Auditor read, carries the intention
    assert "(intention: north star: A calculator with powers, documented.)" in text


def test_killed_mid_run_the_autopilot_resumes_and_finishes(tmp_path: Path) -> None:
    """kill -9 while the first iteration's run is building; --resume finishes that run
    (its recorded steps are not redone) and goes on to the criteria."""
    repo = project(tmp_path / "calc")
    model = script(
        tmp_path,
        [plan("power", "calc.py, tests/test_power.py"), plan("docs", "docs/usage.md")],
        {"power": BUILD_POWER, "docs": BUILD_DOCS},
    )
    data = json.loads(model.read_text())
    data["latency_seconds"] = 3  # the Builder is still thinking when the kill comes
    model.write_text(json.dumps(data))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", "from autopack.cli import main; main()", "autopilot"]
    argv += ["-C", str(repo), "--model", f"scripted:{model}", "--auto-approve"]
    pilot = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        while not any(e["event"] == "plan_approved" for e in _journal_or_empty(repo)):
            assert pilot.poll() is None, "the autopilot ended before its run started"
            time.sleep(0.2)
        time.sleep(1)
    finally:
        os.killpg(pilot.pid, signal.SIGKILL)
        pilot.wait()
    events = journal(repo)
    assert "iteration_run_finished" not in [e["event"] for e in events]
    (row,) = autopilots(repo)
    pilot_id = row["id"]
    result = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                      "--auto-approve", "--resume", pilot_id)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ": criteria met" in result.stdout
    assert f"resuming run autopilot-{pilot_id}-1" in result.stdout
    branch = branch_of(result.stdout)
    assert git(repo, "show", f"{branch}:docs/usage.md").startswith("# Usage")
    finished = [e for e in journal(repo) if e["event"] == "iteration_run_finished"]
    assert [(e["iteration"], e["state"]) for e in finished] == [(1, "SUCCEEDED"), (2, "SUCCEEDED")]
    again = autopack("autopilot", "-C", str(repo), "--resume", pilot_id)
    assert again.exit_code == 2 and "has ended: criteria met" in again.stderr


def _journal_or_empty(repo: Path) -> list[dict[str, Any]]:
    return journal(repo) if autopilots(repo) else []


def test_resume_refuses_an_id_that_is_not_an_autopilot(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    for bad in ("../../etc", "0badc0de"):
        result = autopack("autopilot", "-C", str(repo), "--resume", bad)
        assert result.exit_code == 2
        assert "not an autopilot id" in result.stderr or "no autopilot" in result.stderr
    assert not (repo / ".autopack/autopilot").exists()
