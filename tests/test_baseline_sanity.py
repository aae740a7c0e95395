"""A baseline that is no evidence stops `autopack run` before the Builder spends anything.

Each project below is a real git repository whose base tree cannot give a baseline: a
pytest plugin its addopts need is missing, an option no installed plugin provides, a
test file that fails to import, nothing to collect, a conftest that crashes pytest. The
run must exit 3 with the command, what it printed and the fix, make no Builder call,
cache nothing, and end PAUSED with that reason; `autopack doctor` must say the same.
A project with one pre-existing failing test is sane and still lands an honest change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import RunState
from autopack.verify import baseline_key
from autopack.workspace import git

COMMAND = "python -m pytest -p no:xdist -p no:benchmark"

PLAN = """\
run: {goal: add mul, max_attempts: 1}
tiers:
  - id: only
    phases:
      - id: add-mul
        goal: Add calc.mul
        scope: {paths: [calc.py, tests/test_mul.py]}
        tests:
          fail_to_pass: [tests/test_mul.py::test_mul]
"""

MUL = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
TEST_MUL = "from calc import mul\n\n\ndef test_mul():\n    assert mul(3, 4) == 12\n"
SCRIPT = yaml.safe_dump(
    {
        "version": 1,
        "replies": {
            "add-mul": {
                "builder": [
                    {
                        "tool_calls": [
                            {
                                "name": "write_file",
                                "arguments": {"path": "calc.py", "content": MUL},
                            },
                            {
                                "name": "write_file",
                                "arguments": {"path": "tests/test_mul.py", "content": TEST_MUL},
                            },
                            {"name": "finish", "arguments": {"summary": "mul added"}},
                        ]
                    }
                ],
                "auditor": [{"verdict": "approve", "summary": "fine", "issues": []}],
            }
        },
    }
)

TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def _project(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path, Path]:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "autopack.toml").write_text(
        f'test_command = "{COMMAND}"\n[models]\nbuilder = "scripted:{tmp_path}/script.yaml"\n'
        f'auditor = "scripted:{tmp_path}/script.yaml"\n'
    )
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    return repo, tmp_path / "plan.yaml", tmp_path / "script.yaml"


def _run(repo: Path, plan: Path, script: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}"]
    )
    return result.exit_code, result.output


INSANE = {
    "a plugin in addopts that is not installed": (
        {
            "tests/test_calc.py": TEST_CALC,
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p autopack_absent_plugin"\n',
        },
        "no test ran",
        "install autopack_absent_plugin into ",
    ),
    "an addopts option no installed plugin provides": (
        {
            "tests/test_calc.py": TEST_CALC,
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "--cov-absent=calc"\n',
        },
        "pytest refused its own command line or configuration (exit 4)",
        "the pytest options --cov-absent=calc",
    ),
    "test files that fail to collect": (
        {
            "tests/test_calc.py": TEST_CALC,
            "tests/test_more.py": "import autopack_absent_dependency\n",
        },
        "1 test file(s) fail to collect: tests/test_more.py",
        "install autopack_absent_dependency into ",
    ),
    "nothing collected": (
        {"tests/helpers.py": "X = 1\n"},
        "it collected no tests (exit 5)",
        "point the test command at the tests",
    ),
    "a conftest hook that crashes pytest": (
        {
            "tests/test_calc.py": TEST_CALC,
            "conftest.py": "def pytest_collection_modifyitems(items):\n    raise KeyError\n",
        },
        "INTERNALERROR",
        "pytest crashed inside a plugin or a conftest hook",
    ),
}


@pytest.mark.parametrize("case", sorted(INSANE))
def test_an_insane_baseline_stops_the_run_before_the_builder(tmp_path: Path, case: str) -> None:
    files, reason, fix = INSANE[case]
    repo, plan, script = _project(tmp_path, files)

    code, out = _run(repo, plan, script)

    assert code == 3, out
    assert reason in out and fix in out
    assert f"`{COMMAND}` gives no usable baseline on the base tree" in out
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    view = rt.store.view(row.id)
    assert view.state is RunState.PAUSED  # never left RUNNING
    paused = [e.data for e in rt.store.events(row.id) if e.type == "run_paused"]
    assert reason in paused[-1]["reason"] and fix in paused[-1]["reason"]
    calls = [e.data for e in rt.store.events(row.id) if e.type == "model_called"]
    assert calls == []  # the Builder spent nothing
    cassette = rt.run_dir(row.id) / "cassette.jsonl"
    assert not cassette.exists() or cassette.read_text().strip() == ""
    base_tree = git.commit_tree(repo, view.base_commit)
    assert rt.store.baseline_get(baseline_key(base_tree, COMMAND)) is None  # never cached
    evidence = json.loads(
        (rt.attempt_dir(row.id, "add-mul", 1) / "baseline.json").read_text(encoding="utf-8")
    )
    assert reason in evidence["problem"]["reason"]
    assert git.log_commits(repo, view.base_commit, view.branch) == []

    # the doctor runs the same check and agrees
    doctor = CliRunner().invoke(app, ["doctor", "--repo", str(repo)])
    assert doctor.exit_code == 3, doctor.output
    assert "FAIL tests:" in doctor.output and reason in doctor.output and fix in doctor.output


def test_the_missing_plugin_s_stop_names_the_interpreter(tmp_path: Path) -> None:
    files, _, _ = INSANE["an addopts option no installed plugin provides"]
    repo, plan, script = _project(tmp_path, files)

    code, out = _run(repo, plan, script)

    assert code == 3, out
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    evidence = json.loads(
        (rt.attempt_dir(row.id, "add-mul", 1) / "baseline.json").read_text(encoding="utf-8")
    )
    python = evidence["environment"]["python"]
    assert Path(python).name.startswith("python")
    assert f"interpreter: {python}" in out
    assert f"belong to a plugin {python} does not have" in out


def test_a_pre_existing_failure_is_the_base_s_and_an_honest_change_lands(tmp_path: Path) -> None:
    known_bug = "\n\ndef test_known_bug():\n    assert add(0.1, 0.2) == 0.3\n"
    repo, plan, script = _project(tmp_path, {"tests/test_calc.py": TEST_CALC + known_bug})

    code, out = _run(repo, plan, script)

    assert code == 0, out
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    view = rt.store.view(row.id)
    assert view.state is RunState.SUCCEEDED
    assert len(git.log_commits(repo, view.base_commit, view.branch)) == 1
    verify = json.loads(
        (rt.attempt_dir(row.id, "add-mul", 1) / "verify.json").read_text(encoding="utf-8")
    )
    assert verify["delta"]["still_failing"] == ["tests/test_calc.py::test_known_bug"]
    assert verify["delta"]["newly_failing"] == []
    environment = verify["baseline"]["environment"]
    assert environment["python"] and environment["python_version"]
    assert any(p.startswith("pytest-timeout-") for p in environment["plugins"])
    base_tree = git.commit_tree(repo, view.base_commit)
    assert rt.store.baseline_get(baseline_key(base_tree, COMMAND)) is not None
    assert verify["baseline"]["cached"] is True  # run once, before the Builder, not again
    builds = [e for e in rt.store.events(row.id) if e.data.get("role") == "builder"]
    assert len(builds) == 1

    doctor = CliRunner().invoke(app, ["doctor", "--repo", str(repo)])
    assert "warn tests:" in doctor.output and "tests/test_calc.py::test_known_bug" in doctor.output


def test_a_test_file_the_phase_is_to_make_importable_may_fail_to_collect(
    tmp_path: Path,
) -> None:
    # Written first, red: it cannot even import until the phase adds calc.mul.
    files = {"tests/test_calc.py": TEST_CALC, "tests/test_mul.py": TEST_MUL}
    repo, plan, script = _project(tmp_path, files)

    code, out = _run(repo, plan, script)

    assert code == 0, out
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    assert rt.store.view(row.id).state is RunState.SUCCEEDED


def test_a_baseline_an_older_version_cached_unjudged_is_run_again(tmp_path: Path) -> None:
    repo, plan, script = _project(tmp_path, {"tests/test_calc.py": TEST_CALC})
    rt = Runtime.open(repo)
    base_tree = git.commit_tree(repo, git.rev_parse(repo, "HEAD") or "")
    empty = {"command": COMMAND, "kind": "pytest", "exit_code": 5, "outcomes": {}, "impact": {}}
    rt.store.baseline_put(baseline_key(base_tree, COMMAND), empty)

    code, out = _run(repo, plan, script)

    assert code == 0, out
    (row,) = rt.store.list_runs()
    verify = json.loads(
        (rt.attempt_dir(row.id, "add-mul", 1) / "verify.json").read_text(encoding="utf-8")
    )
    assert verify["baseline"]["counts"] == {"passed": 1}  # the empty entry was not trusted
    assert verify["baseline"]["cached"] is True  # run once, before the Builder, and kept
    assert rt.store.baseline_get(baseline_key(base_tree, COMMAND))["judged"] is True
