"""Anthropic and OpenAI providers, driven through the official SDKs against the loopback server."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from fakeserver import FakeServer, Fault, Reply
from llm_rig import ANTHROPIC_KEY, OPENAI_KEY, DoorRig

from autopack.llm.base import Message, Model, ModelRequest, ToolSpec
from autopack.llm.door import resolve_model
from autopack.llm.errors import (
    AuthError,
    ContextTooLong,
    InvalidRequest,
    MalformedReply,
    Overloaded,
)

pytestmark = pytest.mark.usefixtures("keys")

PROVIDERS = [("anthropic", "claude-opus-4-5"), ("openai", "gpt-4.1")]
READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file of the worktree.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


def model_for(server: FakeServer, provider: str, name: str, **extra: Any) -> Model:
    url = server.anthropic_url if provider == "anthropic" else server.openai_url
    options = {"base_url": url, "timeout_seconds": 5, **extra}
    return resolve_model(f"{provider}:{name}", settings={"providers": {provider: options}})


def ask(text: str = "Fix the bug in a.py.", **kwargs: Any) -> ModelRequest:
    messages = (Message("system", "You are the Builder."), Message("user", text))
    return ModelRequest(messages=messages, tools=(READ_FILE,), phase_id="p1", attempt=1, **kwargs)


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_tool_use_round_trip_through_the_sdk(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    model = model_for(server, provider, name)
    server.enqueue(
        provider,  # type: ignore[arg-type]
        Reply(text="Reading it.", tool_calls=[("read_file", {"path": "a.py"})], input_tokens=120),
        Reply(text="Fixed.", input_tokens=200, output_tokens=30),
    )
    first = rig.door.complete(model, ask())
    assert first.stop_reason == "tool_use"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("read_file", {"path": "a.py"})]

    call = first.tool_calls[0]
    follow_up = ModelRequest(
        messages=(
            *ask().messages,
            Message("assistant", first.text, tool_calls=(call,)),
            Message("tool", "print('hi')", tool_call_id=call.id),
        ),
        tools=(READ_FILE,),
        phase_id="p1",
        call_index=1,
    )
    second = rig.door.complete(model, follow_up)
    assert (second.text, second.stop_reason) == ("Fixed.", "end_turn")

    sent = server.requests[1]
    if provider == "anthropic":
        sent_key = sent.headers.get("x-api-key") or sent.headers["authorization"]
        assert sent_key.removeprefix("Bearer ") == ANTHROPIC_KEY
        assert "anthropic-version" in sent.headers
        cache = {"cache_control": {"type": "ephemeral"}}
        assert sent.body["system"] == [{"type": "text", "text": "You are the Builder.", **cache}]
        assert sent.body["tools"][0]["input_schema"] == READ_FILE.parameters
        assert sent.body["messages"][1]["content"][1]["type"] == "tool_use"
        result = sent.body["messages"][2]["content"][0]
        assert result == {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": "print('hi')",
            **cache,
        }
    else:
        assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert sent.body["tools"][0]["function"]["parameters"] == READ_FILE.parameters
        assistant, tool = sent.body["messages"][2], sent.body["messages"][3]
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"path": "a.py"}
        assert tool == {"role": "tool", "tool_call_id": call.id, "content": "print('hi')"}

    assert [(e.input_tokens, e.output_tokens) for e in rig.events] == [(120, 5), (200, 30)]
    price = rig.door.prices.price_for(model.spec)
    assert rig.ledger.spent("p1").cost_usd == pytest.approx(
        price.cost(120, 5) + price.cost(200, 30)
    )


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_rate_limit_waits_as_long_as_retry_after_says(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    server.enqueue(provider, Fault(429, retry_after="7"), Reply(text="ok"))  # type: ignore[arg-type]
    response = rig.door.complete(model_for(server, provider, name), ask())
    assert response.text == "ok"
    assert rig.sleeps == [7.0]
    assert len(server.requests) == 2
    assert rig.ledger.spent().model_calls == 1


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
@pytest.mark.parametrize(
    "fault",
    [Fault(500), Fault(529), Fault(503), Fault(kind="hang", seconds=10), Fault(kind="truncate")],
    ids=["500", "529", "503", "timeout", "truncated-body"],
)
def test_infrastructure_faults_are_retried_with_backoff(
    server: FakeServer, rig: DoorRig, provider: str, name: str, fault: Fault
) -> None:
    model = model_for(server, provider, name, timeout_seconds=0.5)
    if fault.kind == "hang":  # two timeouts in a row are retried only when allowed
        rig.door.retry = replace(rig.door.retry, timeout_retries=2)
    server.enqueue(provider, fault, fault, Reply(text="ok"))  # type: ignore[arg-type]
    assert rig.door.complete(model, ask()).text == "ok"
    assert len(rig.sleeps) == 2
    assert 0.5 <= rig.sleeps[0] <= 1.0 and 1.0 <= rig.sleeps[1] <= 2.0
    assert len(rig.events) == 1


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_retries_run_out_and_leave_the_budget_untouched(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    server.enqueue(provider, *[Fault(502)] * 4)  # type: ignore[arg-type]
    with pytest.raises(Overloaded) as caught:
        rig.door.complete(model_for(server, provider, name), ask())
    assert caught.value.retryable and not caught.value.environment
    assert len(server.requests) == 4
    assert rig.ledger.spent().model_calls == 0 and rig.events == []


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_malformed_tool_arguments_come_back_as_a_call_with_the_error(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    """Unreadable arguments are the model's mistake on one call, not a broken reply: the
    call comes back with the reason, for the tool loop to answer as a tool error."""
    bad = Reply(tool_calls=[("read_file", '{"path": "a.p'), ("list_dir", {})])
    server.enqueue(provider, bad)  # type: ignore[arg-type]
    response = rig.door.complete(model_for(server, provider, name), ask())
    broken, fine = response.tool_calls
    assert broken.name == "read_file" and broken.arguments == {}
    assert broken.error.startswith("they are not" + (" JSON" if provider == "openai" else " a"))
    assert (fine.name, fine.arguments, fine.error) == ("list_dir", {}, "")
    assert len(server.requests) == 1 and len(rig.events) == 1


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_a_reply_malformed_twice_is_a_model_failure(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    cut = Reply(tool_calls=[("read_file", {"path": "a"})], stop="max_tokens")
    server.enqueue(provider, cut, cut)  # type: ignore[arg-type]
    with pytest.raises(MalformedReply) as caught:
        rig.door.complete(model_for(server, provider, name), ask())
    assert not caught.value.retryable and not caught.value.environment
    assert len(server.requests) == 2


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_a_tool_call_cut_off_at_max_tokens_is_repaired(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    cut = Reply(tool_calls=[("read_file", {"path": "a"})], stop="max_tokens")
    server.enqueue(provider, cut, Reply(text="done"))  # type: ignore[arg-type]
    assert rig.door.complete(model_for(server, provider, name), ask()).text == "done"
    assert len(server.requests) == 2


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_schema_bound_reply_is_validated_and_repaired(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"verdict": {"enum": ["approve", "reject"]}},
        "required": ["verdict"],
    }
    server.enqueue(
        provider,  # type: ignore[arg-type]
        Reply(text='{"verdict": "maybe"}'),
        Reply(text='```json\n{"verdict": "approve"}\n```'),
    )
    request = ModelRequest(messages=(Message("user", "Review."),), json_schema=schema)
    response = rig.door.complete(model_for(server, provider, name), request)
    assert json.loads(response.text.strip("`json\n")) == {"verdict": "approve"}
    first = server.requests[0].body
    if provider == "anthropic":
        assert '"verdict"' in first["system"][0]["text"]
    else:
        assert first["response_format"]["json_schema"]["schema"] == schema
    assert "verdict" in json.dumps(server.requests[1].body["messages"][-1])


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_a_too_long_prompt_is_shrunk_and_retried(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    server.enqueue(
        provider,  # type: ignore[arg-type]
        Fault(400, message="prompt is too long: 250000 tokens > 200000 maximum"),
        Reply(text="ok"),
    )
    big = "line of a very long log\n" * 2000
    assert rig.door.complete(model_for(server, provider, name), ask(big)).text == "ok"
    sizes = [len(json.dumps(r.body["messages"])) for r in server.requests]
    assert sizes[1] < sizes[0] * 0.6
    assert "elided to fit" in json.dumps(server.requests[1].body)
    assert rig.sleeps == [], "shrinking is not a backoff"


def test_context_too_long_with_nothing_to_shrink_fails(server: FakeServer, rig: DoorRig) -> None:
    server.enqueue("openai", Fault(400, message="This model's maximum context length is 8"))
    with pytest.raises(ContextTooLong):
        rig.door.complete(model_for(server, "openai", "gpt-4.1"), ask("short"))


@pytest.mark.parametrize(
    ("provider", "name", "env"),
    [
        ("anthropic", "claude-opus-4-5", "ANTHROPIC_API_KEY"),
        ("openai", "gpt-4.1", "OPENAI_API_KEY"),
    ],
)
def test_refused_credentials_fail_fast_naming_the_setting(
    rig: DoorRig, provider: str, name: str, env: str
) -> None:
    with FakeServer(api_key="the-right-key") as guarded:
        with pytest.raises(AuthError) as caught:
            rig.door.complete(model_for(guarded, provider, name), ask())
        assert len(guarded.requests) == 1, "no retry for a bad key"
    message = str(caught.value)
    assert caught.value.environment
    assert env in message and f"models.providers.{provider}.api_key_env" in message
    assert ANTHROPIC_KEY not in message and OPENAI_KEY not in message


def test_a_missing_key_fails_before_any_request(
    server: FakeServer, rig: DoorRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(AuthError, match="ANTHROPIC_API_KEY"):
        rig.door.complete(model_for(server, "anthropic", "claude-opus-4-5"), ask())
    assert server.requests == []


@pytest.mark.parametrize(("provider", "name"), PROVIDERS)
def test_an_unknown_model_is_an_environment_error(
    server: FakeServer, rig: DoorRig, provider: str, name: str
) -> None:
    server.enqueue(provider, Fault(404, message=f"model: {name}"))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest) as caught:
        rig.door.complete(model_for(server, provider, name), ask())
    assert caught.value.environment and "--model" in str(caught.value)


def test_openai_compatible_server_without_key_or_usage(
    server: FakeServer, rig: DoorRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    settings = {"providers": {"ollama": {"base_url": server.openai_url}}}
    model = resolve_model("ollama:qwen2.5-coder", settings=settings)
    rig.door.prices = type(rig.door.prices).default(
        {"ollama:qwen2.5-coder": {"input_per_mtok": 0, "output_per_mtok": 0}}
    )
    server.enqueue("openai", Reply(text="hello from a local model", usage=False))
    response = rig.door.complete(model, ask())
    assert response.text == "hello from a local model"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert "max_tokens" in server.requests[0].body
    assert rig.events[0].model == "ollama:qwen2.5-coder"
