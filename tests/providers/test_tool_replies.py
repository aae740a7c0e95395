"""How the Builder takes replies real models send, through ``autopack run`` with the
Anthropic SDK against the loopback server: several tool calls in one reply (results in
order, ``finish`` after the others) and a prose reply in the middle of a tool session
(one reminder, then the session goes on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeserver import FakeServer, Reply
from test_run_ends import PLAN, make_repo
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.roles.builder import REMINDER
from autopack.states import RunState
from autopack.workspace import git

KEY = "sk-ant-tool-replies-0123456789abcdefgh"
VERDICT = json.dumps({"verdict": "approve", "summary": "ok", "issues": []})
EDIT = ("edit", {"path": "a.py", "old": "A = 1", "new": "A = 2"})


def run(tmp_path: Path, replies: list[Reply]) -> tuple[str, list[dict[str, object]], Path]:
    with FakeServer(api_key=KEY) as server:
        server.enqueue("anthropic", *replies, Reply(text=VERDICT))
        repo = make_repo(tmp_path, f'[models.providers.anthropic]\nbase_url = "{server.url}"\n')
        plan = tmp_path / "plan.yaml"
        plan.write_text(PLAN % "")
        args = ["run", str(plan), "-C", str(repo), "--model", "anthropic:claude-sonnet-4-6"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert server.pending("anthropic") == 0
        bodies = [r.body for r in server.requests if "tools" in r.body]
    (row,) = Runtime.open(repo).store.list_runs()
    view = Runtime.open(repo).store.view(row.id)
    assert view.state is RunState.SUCCEEDED, view.reason
    return git.git(repo, "show", f"{view.branch}:a.py"), bodies, repo


def test_several_calls_in_one_reply_answer_in_order_and_finish_runs_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    reads = [("read_file", {"path": "a.py"}), ("search", {"pattern": "A ="}), ("list_dir", {})]
    landed, bodies, _ = run(
        tmp_path,
        [
            Reply(text="Looking around.", tool_calls=reads),
            Reply(tool_calls=[("finish", {"summary": "A is 2"}), EDIT]),
        ],
    )
    assert landed == "A = 2"  # the edit listed after finish still ran
    asked, answered = bodies[1]["messages"][-2], bodies[1]["messages"][-1]
    ids = [b["id"] for b in asked["content"] if b["type"] == "tool_use"]
    results = [b for b in answered["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ids
    assert results[0]["content"] == "A = 1"
    assert "a.py" in results[1]["content"] and "a.py" in results[2]["content"]


def test_prose_in_the_middle_of_a_tool_session_gets_one_reminder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    landed, bodies, _ = run(
        tmp_path,
        [
            Reply(tool_calls=[("read_file", {"path": "a.py"})]),
            Reply(text="The value should become 2."),
            Reply(tool_calls=[EDIT, ("finish", {"summary": "A is 2"})]),
        ],
    )
    assert landed == "A = 2"
    last = bodies[2]["messages"]
    assert last[-2]["content"][0]["text"] == "The value should become 2."
    assert last[-1]["content"][-1]["text"] == REMINDER
