"""``autopack replay`` of a successful run lands the same trees, offline; a replay that
diverges ends with the reason and leaves no branch, worktree or RUNNING run behind.

The recorded run is one a person would make: pytest tests whose failure output names
temporary folders and the worktree, a retry that carries that output to the Builder,
and a Builder ``run`` tool call that prints where it ran and a fresh temporary folder.
Nothing of that may make the replay's requests differ from the recording."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.llm.cassette import request_hash
from autopack.states import RunState
from autopack.workspace import git

PLAN = """\
run: {goal: Double the value}
tiers:
  - id: t
    phases:
      - id: half
        goal: Add half(), which returns half its argument
        scope: {paths: [calc.py]}
"""

TEST_CALC = """\
import os
import tempfile

from calc import double


def test_double(tmp_path):
    scratch = tempfile.mkdtemp()
    print("working in", os.getcwd(), "scratch", scratch, "tmp", tmp_path)
    assert double(2) == 4, f"double(2) was {double(2)} (scratch {scratch}, tmp {tmp_path})"
"""


def edit(old: str, new: str) -> str:
    return f"calc.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


WRONG = edit("    return x * 2", "    return x * 3")
RIGHT = edit("    return x * 2", "    return x * 2\n\n\ndef half(x):\n    return x / 2")
PRINT_WHERE = (
    'python -c "import os, sys, tempfile; print(os.getcwd(), tempfile.mkdtemp(), sys.prefix)"'
    " && python -m pytest -rA --junitxml=$(mktemp -d)/junit.xml"
)


def block(text: str, indent: str = "        ") -> str:
    return "".join(f"{indent}{line}\n" for line in text.splitlines())


SCRIPT = f"""\
version: 1
replies:
  half:
    builder:
      - |
{block(WRONG)}
      - tool_calls:
          - name: run
            arguments:
              command: {json.dumps(PRINT_WHERE)}
      - |
{block(RIGHT)}
    auditor:
      - {{verdict: approve, summary: ok, issues: []}}
"""


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def double(x):\n    return x * 2\n")
    (repo / "tests" / "test_calc.py").write_text(TEST_CALC)
    (repo / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\n'
        '[tool.autopack]\ntest_command = "python -m pytest -rA"\n'
    )
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def recorded_run(tmp_path: Path) -> tuple[Path, str]:
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    args = ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    (row,) = Runtime.open(repo).store.list_runs()
    return repo, row.id


def prompts_of(repo: Path, run_id: str) -> list[str]:
    cassette = repo / ".autopack" / "runs" / run_id / "cassette.jsonl"
    entries = [json.loads(line) for line in cassette.read_text().splitlines()]
    return [m["content"] for e in entries for m in e["request"]["messages"]]


def leftovers(repo: Path, run_id: str) -> tuple[list[str], list[Path]]:
    branches = git.git(repo, "branch", "--list", f"autopack/{run_id}-replay-*").split()
    trees = list((repo / ".autopack" / "worktrees").glob(f"{run_id}-replay-*/*"))
    return branches, trees


def test_replay_of_a_successful_run_with_test_output_and_tool_output_lands_the_same(
    tmp_path: Path,
) -> None:
    repo, run_id = recorded_run(tmp_path)
    view = Runtime.open(repo).store.view(run_id)
    assert view.phases["half"].attempt == 2  # the retry carried the test output back
    prompts = "\n".join(prompts_of(repo, run_id))
    assert "<worktree>" in prompts and "<tmp>/junit.xml" in prompts
    assert str(repo) not in prompts
    assert not re.search(r"/tmp/[\w.-]+", prompts), "a temporary folder reached a prompt"

    done = CliRunner().invoke(app, ["replay", run_id, "-C", str(repo)])
    assert done.exit_code == 0, done.output
    assert re.search(r"^half: \w{12} -> \w{12} same$", done.output, re.MULTILINE)
    replayed = Runtime.open(repo).store.view(f"{run_id}-replay-1")
    assert replayed.state is RunState.SUCCEEDED


def test_a_diverging_replay_ends_with_the_reason_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    repo, run_id = recorded_run(tmp_path)
    cassette = repo / ".autopack" / "runs" / run_id / "cassette.jsonl"
    entries = [json.loads(line) for line in cassette.read_text().splitlines()]
    builder = [e for e in entries if e["request"]["role"] == "builder"]
    builder[-1]["request"]["messages"][0]["content"] += "\nnever asked"
    builder[-1]["hash"] = request_hash(builder[-1]["request"])
    cassette.write_text("".join(json.dumps(e) + "\n" for e in entries))
    before = git.git(repo, "branch", "--list").split()

    done = CliRunner().invoke(app, ["replay", run_id, "-C", str(repo)])
    assert done.exit_code == 3, done.output
    assert "the request differs from the recording" in done.output
    assert "Traceback" not in done.output
    replay_id = f"{run_id}-replay-1"
    replayed = Runtime.open(repo).store.view(replay_id)
    assert replayed.state is RunState.FAILED
    assert "replay diverged" in replayed.reason
    assert leftovers(repo, run_id) == ([], [])
    assert git.git(repo, "branch", "--list").split() == before
    assert git.git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
