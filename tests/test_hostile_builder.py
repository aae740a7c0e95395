"""A hostile Builder's tool calls, through ``autopack run``: arguments of the wrong type,
NaN and infinite numbers, unknown arguments, a regular expression that backtracks without
end and malformed tool calls each come back to the model as a tool error (or a repair
turn), nothing they asked for runs, and the run goes on to its end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.roles import tools
from autopack.states import RunState
from autopack.workspace import git

PLAN = """\
run: {goal: Edit a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Change a
        scope: {paths: [a.py, slow.txt]}
        tests: {command: "true"}
"""

SCRIPT = """\
version: 1
replies:
  p:
    builder:
      - tool_calls:
          - {name: read_file, arguments: {path: 5}}
          - {name: run, arguments: {command: "touch nan-ran", timeout_s: .nan}}
          - {name: run, arguments: {command: "touch inf-ran", timeout_s: .inf}}
          - {name: run, arguments: {command: "touch text-ran", timeout_s: "30"}}
          - {name: read_file, arguments: {path: a.py, start_line: -3}}
          - {name: write_file, arguments: {path: a.py, content: "A = 2\\n", mode: 511}}
          - {name: write_file, arguments: {path: slow.txt, content: "%s"}}
          - {name: search, arguments: {pattern: "(a|aa)+$", regex: true}}
          - {name: search, arguments: {pattern: "(", regex: true}}
      - tool_calls: [{arguments: {path: a.py}}]
      - tool_calls:
          - {name: edit, arguments: {path: a.py, old: "A = 1", new: "A = 3"}}
      - tool_calls: [{name: finish, arguments: {summary: done}}]
    auditor:
      - {verdict: approve, summary: ok, issues: []}
""" % ("a" * 60 + "b")

TOOL_ERRORS = [
    "error: bad arguments for read_file: path: 5 is not of type 'string'",
    "error: bad arguments for run: timeout_s: numbers must be finite",
    "error: bad arguments for run: timeout_s: '30' is not of type 'number'",
    "error: bad arguments for read_file: start_line: -3 is less than the minimum of 1",
    "error: bad arguments for write_file: Additional properties are not allowed ('mode'",
    "error: the search took longer than",
    "error: not a regular expression",
]


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def tool_results(repo: Path, run_id: str) -> list[str]:
    """What the tools answered, as the model saw it (the requests in the cassette)."""
    cassette = repo / ".autopack" / "runs" / run_id / "cassette.jsonl"
    found: list[str] = []
    for line in cassette.read_text().splitlines():
        for message in json.loads(line)["request"]["messages"]:
            if message["role"] in ("tool", "user") and message["content"] not in found:
                found.append(message["content"])
    return found


def test_hostile_tool_calls_come_back_as_tool_errors_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "SEARCH_SECONDS", 0.5)  # the bound, made short for the test
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    args = ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"]
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    view = rt.store.view(row.id)
    assert view.state is RunState.SUCCEEDED, (result.output, view.reason)
    assert result.exit_code == 0

    seen = "\n".join(tool_results(repo, row.id))
    for expected in TOOL_ERRORS:
        assert expected in seen, expected
    assert "nothing was done" in seen
    # the malformed call (no name) got the door's repair turn, then the Builder went on
    assert "scripted reply #2: tool call #1 needs a name" in seen
    landed = git.git(repo, "show", f"{view.branch}:a.py")
    assert landed == "A = 3"
    tree = git.git(repo, "ls-tree", "-r", "--name-only", view.branch).split()
    assert not {"nan-ran", "inf-ran", "text-ran"} & set(tree)
    worktrees = repo / ".autopack" / "worktrees"
    assert not list(worktrees.rglob("*-ran"))
