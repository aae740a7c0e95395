"""Hidden acceptance tests stop a Builder that special-cases the visible test's input.

End to end through `autopack run` on a real git repository, with a scripted Builder and
an Auditor that approves everything, so only the gate's evidence decides. The cheat
(``if year == 2024: return True``) passes the visible test and lands without hidden
tests; with them it is sent back and never lands. An honest change lands with them.
The hidden file's content never reaches the Builder (prompts, cassette, evidence) and
is never on the run branch, even when the Builder goes looking for it.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
from autopack.workspace import git

COMMAND = "python -m pytest -p no:xdist -p no:benchmark"
MARKERS = ("HIDDEN-MARKER-5c1e", "HIDDEN-MESSAGE-5c1e", "(1900, False)", "[2000-True]")
"""The file's text, its assertion message, and its inputs (in the source and as test IDs)."""
HIDDEN_TEST = """\
# HIDDEN-MARKER-5c1e: the Builder must never see this file
import pytest

from calc import is_leap


@pytest.mark.parametrize("year, leap", [(1900, False), (2000, True), (2023, False), (1996, True)])
def test_leap_rule(year, leap):
    assert is_leap(year) is leap, "HIDDEN-MESSAGE-5c1e"


def test_next_century_is_not_leap():
    assert not is_leap(2100)
"""
CHEAT = "def is_leap(year):\n    if year == 2024:\n        return True\n    return False\n"
HONEST = "def is_leap(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n"


def _project(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def is_leap(year):\n    raise NotImplementedError\n")
    (repo / "tests" / "test_leap.py").write_text(
        "from calc import is_leap\n\n\ndef test_2024_is_leap():\n    assert is_leap(2024)\n"
    )
    (repo / "autopack.toml").write_text(f'test_command = "{COMMAND}"\n')
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def _plan(tmp_path: Path, hidden: list[dict[str, str]], attempts: int = 2) -> Path:
    tests: dict[str, Any] = {"fail_to_pass": ["tests/test_leap.py::test_2024_is_leap"]}
    if hidden:
        tests["hidden"] = hidden
    phase = {"id": "leap", "goal": "Implement calc.is_leap", "scope": {"paths": ["calc.py"]}}
    plan = {
        "run": {"goal": "leap years", "max_attempts": attempts},
        "tiers": [{"id": "only", "phases": [{**phase, "tests": tests}]}],
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def _script(tmp_path: Path, sources: list[str], *bodies: str) -> Path:
    """Two Builder replies per body: the first goes looking for the hidden tests (their
    outcome comes back in the next request), the second writes ``calc.py``; an Auditor
    that approves every attempt."""
    look = "; ".join(f"cat {s}; ls {Path(s).parent}" for s in sources) or "true"
    replies: list[dict[str, Any]] = []
    for body in bodies:
        search = [
            {"name": "run", "arguments": {"command": look}},
            {"name": "read_file", "arguments": {"path": "tests/test_leap_hidden.py"}},
        ]
        write = [
            {"name": "write_file", "arguments": {"path": "calc.py", "content": body}},
            {"name": "finish", "arguments": {"summary": "is_leap implemented"}},
        ]
        replies += [{"tool_calls": search}, {"tool_calls": write}]
    approve = {"verdict": "approve", "summary": "looks right", "issues": []}
    verdicts = [copy.deepcopy(approve) for _ in range(3)]  # shared objects dump as aliases
    script = {"version": 1, "replies": {"leap": {"builder": replies, "auditor": verdicts}}}
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    return path


def _run(repo: Path, plan: Path, script: Path) -> tuple[int, str, Runtime, str]:
    result = CliRunner().invoke(
        app, ["run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}"]
    )
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    return result.exit_code, result.output, rt, row.id


def _hide_outside(tmp_path: Path) -> tuple[list[dict[str, str]], list[str]]:
    source = tmp_path / "acceptance" / "test_leap_hidden.py"
    source.parent.mkdir()
    source.write_text(HIDDEN_TEST)
    hidden = [{"source": "acceptance/test_leap_hidden.py", "target": "tests/test_leap_hidden.py"}]
    return hidden, [str(source)]


def _assert_never_revealed(repo: Path, rt: Runtime, run_id: str) -> None:
    """No marker of the hidden file in anything the run wrote or the branch holds, though
    the Builder looked (and was told what it found: nothing)."""
    cassette = (rt.run_dir(run_id) / "cassette.jsonl").read_text(encoding="utf-8")
    assert "No such file or directory" in cassette
    for path in rt.run_dir(run_id).rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not [m for m in MARKERS if m in text], path
    branch = rt.store.view(run_id).branch
    assert "tests/test_leap_hidden.py" not in git.ls_files(repo, branch)
    history = subprocess.run(
        ["git", "log", "-p", "--all"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert not [m for m in MARKERS if m in history]


def test_a_special_case_lands_without_hidden_tests(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    code, out, rt, run_id = _run(repo, _plan(tmp_path, []), _script(tmp_path, [], CHEAT))

    assert code == 0, out  # the hole the hidden tests close: visible evidence is satisfied
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert "year == 2024" in git.git(repo, "show", f"{view.branch}:calc.py")


def test_hidden_tests_stop_the_special_case_and_never_reach_the_builder(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    hidden, sources = _hide_outside(tmp_path)
    script = _script(tmp_path, sources, CHEAT, CHEAT)

    code, out, rt, run_id = _run(repo, _plan(tmp_path, hidden), script)

    assert code == 1, out
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    assert view.phases["leap"].state is PhaseState.FAILED
    assert git.log_commits(repo, view.base_commit, view.branch) == []
    gates = [
        e.data["result"]
        for e in rt.store.events(run_id)
        if e.type == "step_completed" and e.data["step"] == "gate"
    ]
    assert [g["decision"] for g in gates] == ["RETRY", "RETRY"]
    assert all(g["rules"] == ["hidden_tests_failing"] for g in gates)
    verify = json.loads((rt.attempt_dir(run_id, "leap", 1) / "verify.json").read_text())
    assert verify["delta"]["fail_to_pass_failing"] == []  # the visible test passed
    assert verify["hidden"]["tests"] == 5
    assert verify["delta"]["hidden_failing"] == [
        "tests/test_leap_hidden.py::test_leap_rule"  # parameters (the inputs) left out
    ]
    digest = subprocess.run(
        ["sha256sum", sources[0]], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert verify["hidden"]["files"] == [{"target": "tests/test_leap_hidden.py", "sha256": digest}]
    # the second attempt was told which hidden test fails, and nothing of what it says
    prompt = (rt.attempt_dir(run_id, "leap", 2) / "prompt.txt").read_text()
    assert "tests/test_leap_hidden.py::test_leap_rule" in prompt
    _assert_never_revealed(repo, rt, run_id)


def test_an_honest_change_passes_the_hidden_tests_and_lands(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    hidden, sources = _hide_outside(tmp_path)

    code, out, rt, run_id = _run(
        repo, _plan(tmp_path, hidden, 1), _script(tmp_path, sources, HONEST)
    )

    assert code == 0, out
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert len(git.log_commits(repo, view.base_commit, view.branch)) == 1
    verify = json.loads((rt.attempt_dir(run_id, "leap", 1) / "verify.json").read_text())
    assert verify["hidden"]["tests"] == 5 and verify["hidden"]["failing"] == []
    proof = json.loads((rt.run_dir(run_id) / "proofs" / "leap-1.json").read_text())
    assert proof["tests"]["hidden"]["failing"] == []
    _assert_never_revealed(repo, rt, run_id)


def test_an_uncommitted_file_in_the_repository_can_be_hidden(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    source = repo / "acceptance" / "test_leap_hidden.py"
    source.parent.mkdir()
    source.write_text(HIDDEN_TEST)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("acceptance/\n")
    script = _script(tmp_path, [str(source)], CHEAT)

    code, out, rt, run_id = _run(
        repo, _plan(tmp_path, [{"source": "repo/acceptance/test_leap_hidden.py"}], 1), script
    )

    assert code == 1, out
    verify = json.loads((rt.attempt_dir(run_id, "leap", 1) / "verify.json").read_text())
    assert verify["delta"]["hidden_failing"] == [
        "acceptance/test_leap_hidden.py::test_leap_rule"  # its place in the repository
    ]
    view = rt.store.view(run_id)
    assert git.log_commits(repo, view.base_commit, view.branch) == []
    assert "acceptance/test_leap_hidden.py" not in git.ls_files(repo, view.branch)


def test_hidden_tests_the_builder_could_read_stop_the_run_before_it(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    committed = repo / "tests" / "test_leap_hidden.py"
    committed.write_text(HIDDEN_TEST)
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "acceptance tests, committed by mistake")
    plan = _plan(tmp_path, [{"source": "repo/tests/test_leap_hidden.py"}])

    code, out, rt, run_id = _run(repo, plan, _script(tmp_path, [], CHEAT))

    assert code == 3, out
    assert "is committed in the base commit" in out
    assert rt.store.view(run_id).state is RunState.PAUSED
    assert [e for e in rt.store.events(run_id) if e.type == "model_called"] == []


def test_without_a_sandbox_hidden_tests_cannot_be_hidden(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    (repo / "autopack.toml").write_text(f'test_command = "{COMMAND}"\nsandbox = "subprocess"\n')
    git.git(repo, "commit", "-q", "-am", "no sandbox")
    hidden, _ = _hide_outside(tmp_path)

    code, out, rt, run_id = _run(repo, _plan(tmp_path, hidden), _script(tmp_path, [], CHEAT))

    assert code == 3, out
    assert "the Builder's commands can read the hidden tests" in out
    assert rt.store.view(run_id).state is RunState.PAUSED
    assert [e for e in rt.store.events(run_id) if e.type == "model_called"] == []


def test_plan_check_names_a_missing_hidden_source(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [{"source": "acceptance/absent.py"}])

    result = CliRunner().invoke(app, ["plan", "check", str(plan)])

    assert result.exit_code == 2
    line = next(n for n, text in enumerate(plan.read_text().splitlines(), 1) if "absent" in text)
    assert f"{plan}:{line}: tiers[0].phases[0].tests.hidden[0].source: no such file" in (
        result.output
    )
