"""Prompt caching in a whole run: ``autopack run`` through the official Anthropic SDK to the
loopback server, a Builder session of several tool steps. The prefix each request sends is
byte for byte the same on every step and in a second run of the same plan from another
directory; the cache usage the server reports is what the run spends and what ``autopack
status`` shows; the run replays offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, Recorded, Reply
from fastapi.testclient import TestClient
from test_run_ends import make_repo, status
from typer.testing import CliRunner

from autopack.api import ApiConfig, create_app
from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.projection import RunView
from autopack.states import RunState
from autopack.store.keys import create_key

KEY = "sk-ant-cache-runs-0123456789abcdefghij"
PLAN = """\
run: {goal: Edit a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Change a
        acceptance_criteria: [A is 2]
        scope: {paths: [a.py]}
        tests: {command: "true"}
"""
VERDICT = json.dumps({"verdict": "approve", "summary": "ok", "issues": []})


def builder_session() -> list[Reply]:
    """Read, edit, read again, finish; the server says what the cache did on each step."""
    return [
        Reply(text="Reading.", tool_calls=[("read_file", {"path": "a.py"})], cache_write=1500),
        Reply(
            tool_calls=[("edit", {"path": "a.py", "old": "A = 1", "new": "A = 2"})],
            cache_read=1500,
            cache_write=40,
        ),
        Reply(tool_calls=[("read_file", {"path": "a.py"})], cache_read=1540, cache_write=30),
        Reply(tool_calls=[("finish", {"summary": "A is 2"})], cache_read=1570, cache_write=30),
    ]


def run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, RunView, list[Any]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    tmp_path.mkdir(parents=True, exist_ok=True)
    with FakeServer(api_key=KEY) as server:
        server.enqueue("anthropic", *builder_session(), Reply(text=VERDICT))
        config = f'[models.providers.anthropic]\nbase_url = "{server.anthropic_url}"\n'
        repo = make_repo(tmp_path, config)
        plan = tmp_path / "plan.yaml"
        plan.write_text(PLAN)
        model = "anthropic:claude-sonnet-4-6"
        result = CliRunner().invoke(app, ["run", str(plan), "-C", str(repo), "--model", model])
        assert result.exit_code == 0, result.output
    (row,) = Runtime.open(repo).store.list_runs()
    return repo, Runtime.open(repo).store.view(row.id), server.requests


def builder_bodies(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [r.body for r in requests if "tools" in r.body]


def test_the_prefix_is_byte_stable_across_steps_runs_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, view, requests = run_once(tmp_path / "one", monkeypatch)
    assert view.state is RunState.SUCCEEDED, view.reason
    steps = builder_bodies(requests)
    assert len(steps) == 4

    def prefix(body: dict[str, Any]) -> str:
        return json.dumps([body["tools"], body.get("system"), body["messages"][0]])

    assert len({prefix(body) for body in steps}) == 1
    first = steps[0]["messages"][0]["content"][0]
    assert first["cache_control"] == {"type": "ephemeral"}
    assert str(tmp_path) not in prefix(steps[0])
    assert all(
        sum("cache_control" in b for t in body["messages"] for b in t["content"]) <= 2
        and "cache_control" in body["messages"][-1]["content"][-1]
        for body in steps
    )

    # The same plan from another directory sends the very same bytes, step for step.
    _, other, again = run_once(tmp_path / "two", monkeypatch)
    assert other.state is RunState.SUCCEEDED
    assert [json.dumps(b) for b in builder_bodies(again)] == [json.dumps(b) for b in steps]

    replayed = CliRunner().invoke(app, ["replay", view.run_id, "-C", str(repo)])
    assert replayed.exit_code == 0, replayed.output


def test_cache_usage_is_what_the_run_spends_and_status_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, view, _ = run_once(tmp_path, monkeypatch)
    calls = [e.data for e in Runtime.open(repo).store.events(view.run_id)]
    calls = [c for c in calls if c.get("role") == "builder" and "cache_read_tokens" in c]
    reads = [c["cache_read_tokens"] for c in calls]
    writes = [c["cache_write_tokens"] for c in calls]
    assert (reads, writes) == ([0, 1500, 1540, 1570], [1500, 40, 30, 30])
    # claude-sonnet-4-6: uncached input 3, cache write 3.75, cache read 0.3, output 15 $/Mtok;
    # each reply has 10 uncached input tokens and 5 output tokens.
    expected = [
        (10 * 3 + w * 3.75 + r * 0.3 + 5 * 15) / 1e6 for r, w in zip(reads, writes, strict=True)
    ]
    assert [c["cost_usd"] for c in calls] == pytest.approx(expected)
    assert view.spend.cache_read_tokens == sum(reads)

    shown = status(repo, view.run_id)
    uncached = view.spend.input_tokens - sum(reads) - sum(writes)
    assert f"input: {uncached} uncached, cache {sum(reads)} read, {sum(writes)} written" in shown

    app = create_app(ApiConfig(repo=repo, executor=False))
    with TestClient(app) as client:
        _, secret = create_key(app.state.ctx.rt.store.engine, "reader", "read")
        auth = {"Authorization": f"Bearer {secret}"}
        lines = set(client.get("/metrics", headers=auth).text.splitlines())
        phase = client.get(f"/runs/{view.run_id}/phases/p", headers=auth).json()
    assert f'autopack_input_tokens_total{{cache="read"}} {sum(reads)}' in lines
    assert f'autopack_input_tokens_total{{cache="write"}} {sum(writes)}' in lines
    assert f'autopack_input_tokens_total{{cache="uncached"}} {uncached}' in lines
    assert (phase["cached_tokens"], phase["uncached_tokens"]) == (sum(reads), uncached)
