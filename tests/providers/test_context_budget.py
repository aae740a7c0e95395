"""The Builder's conversation kept within the model's context window, through ``autopack
run`` with the Anthropic SDK against the loopback server: a session that reads more than
the window holds has its older tool results condensed (each condensation an event), the
phase's brief and the latest results stay verbatim, every tool call keeps its answer, and
a replay condenses the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, Reply
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import RunState
from autopack.workspace import git

KEY = "sk-ant-context-budget-0123456789abcdef"
FILES = 7
PLAN = """\
run: {goal: Tidy the modules}
tiers:
  - id: t
    phases:
      - id: p
        goal: Rename A to B in a.py
        acceptance_criteria: [a.py defines B]
        scope: {paths: [a.py], read_only: ["lib/**"]}
        tests: {command: "true"}
"""
VERDICT = json.dumps({"verdict": "approve", "summary": "ok", "issues": []})
LIMITS = """
[models.limits."anthropic:claude-sonnet-4-6"]
context_window = 9000
max_output_tokens = 1000
"""


def make_repo(root: Path, server: FakeServer) -> Path:
    repo = root / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    for n in range(FILES):  # about 1,100 tokens each, as the door counts
        body = "".join(f"def helper_{n}_{i}(x):\n    return x + {i}\n\n" for i in range(100))
        (repo / "lib" / f"m{n}.py").write_text(f"{body}# end of m{n}\n")
    config = f'[models.providers.anthropic]\nbase_url = "{server.anthropic_url}"\n{LIMITS}'
    (repo / "autopack.toml").write_text(config)
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def session() -> list[Reply]:
    reads = [Reply(tool_calls=[("read_file", {"path": f"lib/m{n}.py"})]) for n in range(FILES)]
    return [
        *reads,
        Reply(tool_calls=[("edit", {"path": "a.py", "old": "A = 1", "new": "B = 1"})]),
        Reply(tool_calls=[("finish", {"summary": "renamed"})]),
        Reply(text=VERDICT),
    ]


def tool_ids(body: dict[str, Any], kind: str, key: str) -> list[str]:
    return [b[key] for t in body["messages"] for b in t["content"] if b["type"] == kind]


def test_older_observations_are_condensed_within_the_window_and_replay_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        server.enqueue("anthropic", *session())
        repo = make_repo(tmp_path, server)
        plan = tmp_path / "plan.yaml"
        plan.write_text(PLAN)
        args = ["run", str(plan), "-C", str(repo), "--model", "anthropic:claude-sonnet-4-6"]
        result = CliRunner().invoke(app, args)
        bodies = [r.body for r in server.requests if "tools" in r.body]
    assert result.exit_code == 0, result.output
    store = Runtime.open(repo).store
    (row,) = store.list_runs()
    view = store.view(row.id)
    assert view.state is RunState.SUCCEEDED
    events = [e.data for e in store.events(row.id) if e.type == "context_condensed"]
    assert events, "a session longer than the window is condensed"
    first = events[0]
    assert first["budget"] == 8000 and first["tokens_before"] > 8000
    assert first["tokens_after"] <= 8000
    assert first["condensed"][0] == 'read_file {"path": "lib/m0.py"}'

    brief = bodies[0]["messages"][0]
    for body in bodies:
        assert body["messages"][0]["content"][0]["text"] == brief["content"][0]["text"]
        calls = tool_ids(body, "tool_use", "id")
        assert calls == tool_ids(body, "tool_result", "tool_use_id")  # every call answered
    last = json.dumps(bodies[-1]["messages"])
    assert "[condensed: the result of read_file" in last
    assert "# end of m6" in last  # the latest results are kept verbatim
    assert "# end of m0" not in last

    replayed = CliRunner().invoke(app, ["replay", row.id, "-C", str(repo)])
    assert replayed.exit_code == 0, replayed.output
    (copy,) = [r for r in store.list_runs() if r.id != row.id]
    again = [e.data for e in store.events(copy.id) if e.type == "context_condensed"]
    assert again == events
