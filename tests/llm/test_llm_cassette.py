"""Cassettes: record through the real SDKs, replay with no provider, refuse a divergent request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, Fault, Reply
from llm_rig import ANTHROPIC_KEY, OPENAI_KEY, DoorRig

from autopack.events import Event
from autopack.llm.base import Message, Model, ModelRequest, ModelResponse, ToolSpec
from autopack.llm.cassette import Cassette, ReplayModel, redact
from autopack.llm.door import resolve_model
from autopack.llm.errors import ReplayDivergence

pytestmark = pytest.mark.usefixtures("keys")

TOOL = ToolSpec(
    "run", "Run a command.", {"type": "object", "properties": {"cmd": {"type": "string"}}}
)
SPECS = {"anthropic": "anthropic:claude-opus-4-5", "openai": "openai:gpt-4.1"}


def live_models(server: FakeServer) -> dict[str, Model]:
    settings = {
        "providers": {
            "anthropic": {"base_url": server.anthropic_url},
            "openai": {"base_url": server.openai_url},
        }
    }
    return {name: resolve_model(spec, settings=settings) for name, spec in SPECS.items()}


def session(rig: DoorRig, models: dict[str, Model], first_prompt: str) -> list[ModelResponse]:
    """A small run: a tool-use exchange, a too-long prompt, a repaired reply."""
    base = (Message("system", "You are the Builder."), Message("user", first_prompt))
    out = [rig.door.complete(models["anthropic"], ModelRequest(base, (TOOL,), phase_id="p1"))]
    call = out[0].tool_calls[0]
    follow = (*base, Message("assistant", "", (call,)), Message("tool", "ok", tool_call_id=call.id))
    out.append(rig.door.complete(models["anthropic"], ModelRequest(follow, (TOOL,), phase_id="p1")))
    long_log = ModelRequest((Message("user", "log line\n" * 3000),), phase_id="p2")
    out.append(rig.door.complete(models["openai"], long_log))
    out.append(rig.door.complete(models["openai"], ModelRequest(base, (TOOL,), phase_id="p2")))
    return out


def script_server(server: FakeServer) -> None:
    server.enqueue(
        "anthropic",
        Reply(text="Running.", tool_calls=[("run", {"cmd": "pytest"})], input_tokens=50),
        Reply(text="All green.", input_tokens=80, output_tokens=12),
    )
    server.enqueue(
        "openai",
        Fault(400, message="This model's maximum context length is 128000 tokens"),
        Reply(text="Summarised.", input_tokens=900),
        Reply(tool_calls=[("run", '{"cmd": ')]),  # replays with the reason it is unreadable
    )


def calls(rig: DoorRig) -> list[dict[str, Any]]:
    return [e.model_dump(exclude={"duration_ms"}) for e in rig.events]


def record(tmp_path: Path, prompt: str = "Make the tests pass.") -> tuple[Path, DoorRig, list[Any]]:
    path = tmp_path / "cassette.jsonl"
    rig = DoorRig(Cassette(path))
    with FakeServer() as server:
        script_server(server)
        responses = session(rig, live_models(server), prompt)
        assert server.pending("anthropic") == server.pending("openai") == 0
    return path, rig, responses


def replay_models(path: Path) -> dict[str, Model]:
    return {name: ReplayModel(path, spec) for name, spec in SPECS.items()}


def test_replay_serves_the_recorded_run_with_no_provider(tmp_path: Path) -> None:
    path, recorded, responses = record(tmp_path)
    replayed = DoorRig(None)
    assert session(replayed, replay_models(path), "Make the tests pass.") == responses
    assert calls(replayed) == calls(recorded)
    assert replayed.ledger.spent() == recorded.ledger.spent()
    kinds = [("error" in e, "response" in e) for e in Cassette(path).entries()]
    assert (True, False) in kinds, "the too-long prompt is on the cassette"


def test_a_request_that_differs_from_the_recording_stops_the_replay(tmp_path: Path) -> None:
    path, _, _ = record(tmp_path)
    with pytest.raises(ReplayDivergence) as caught:
        session(DoorRig(None), replay_models(path), "Make the tests pass, quickly.")
    error = caught.value
    assert error.environment
    assert '-      "content": "Make the tests pass.",' in error.diff
    assert '+      "content": "Make the tests pass, quickly.",' in error.diff
    assert error.diff in str(error)


def test_a_request_asked_more_often_than_recorded_diverges(tmp_path: Path) -> None:
    path, _, _ = record(tmp_path)
    model = ReplayModel(path, SPECS["anthropic"])
    request = Cassette(path).entries()[0]["request"]
    again = ModelRequest(
        (Message("system", "You are the Builder."), Message("user", "Make the tests pass.")),
        (TOOL,),
        phase_id="p1",
    )
    assert request["messages"][1]["content"] == "Make the tests pass."
    model.complete(again)
    with pytest.raises(ReplayDivergence, match="recorded 1 time"):
        model.complete(again)


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path, _, responses = record(tmp_path)
    with path.open("a") as handle:
        handle.write('{"v": 1, "hash": "abc", "requ')
    assert session(DoorRig(None), replay_models(path), "Make the tests pass.") == responses


def test_no_cassette_or_event_holds_a_provider_key(tmp_path: Path) -> None:
    leaky = f"Use {ANTHROPIC_KEY} and {OPENAI_KEY}; also sk-ant-admin01-abcdefghijklmnop."
    path, rig, _ = record(tmp_path, prompt=leaky)
    text = path.read_text()
    events = json.dumps([Event.of("run-1", e).model_dump() for e in rig.events])
    for secret in (ANTHROPIC_KEY, OPENAI_KEY, "sk-ant-admin01-abcdefghijklmnop"):
        assert secret not in text and secret not in events
    assert "[REDACTED]" in text
    # the redacted recording still replays: the live request is redacted the same way
    responses = session(DoorRig(None), replay_models(path), leaky)
    assert responses[1].text == "All green."


def test_redact_covers_secret_env_names_and_key_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_abcdefghijklmnop")
    monkeypatch.setenv("MY_SECRET_VALUE", "hunter2-but-longer")
    monkeypatch.setenv("TOKEN_LIMIT", "5")
    text = "ghp_abcdefghijklmnop hunter2-but-longer sk-abcdefghijklmnopqrstu limit 5"
    assert redact(text) == "[REDACTED] [REDACTED] [REDACTED] limit 5"
