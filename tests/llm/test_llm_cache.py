"""Prompt caching through the official SDKs against the loopback server: what is sent
(Anthropic's cache breakpoints, OpenAI's ``prompt_cache_key``), what comes back (cache
reads and writes), what the door charges for it, and that its reservation still holds
the worst case."""

from __future__ import annotations

from typing import Any

import pytest
from fakeserver import FakeServer, Reply
from llm_rig import DoorRig

from autopack.llm.anthropic_provider import AnthropicModel
from autopack.llm.base import Message, ModelRequest, ToolCall, ToolSpec
from autopack.llm.door import Caps
from autopack.llm.errors import BudgetExceeded, UnknownPrice
from autopack.llm.openai_provider import OpenAIModel
from autopack.llm.pricing import PriceTable
from autopack.llm.tokens import estimate_prompt_tokens

TOOLS = (
    ToolSpec("read_file", "Read a file.", {"type": "object", "properties": {"path": {}}}),
    ToolSpec("finish", "End the attempt.", {"type": "object", "properties": {}}),
)
BRIEF = "Phase p1, attempt 1. Goal: make the tests pass.\n" + "def f(x):\n    return x\n" * 1200


def conversation(steps: int, attempt: int = 1) -> ModelRequest:
    """A Builder conversation after ``steps`` tool round trips."""
    messages: list[Message] = [Message("system", "You are the Builder."), Message("user", BRIEF)]
    for n in range(steps):
        call = ToolCall(f"call_{n}", "read_file", {"path": f"f{n}.py"})
        messages.append(Message("assistant", f"Reading f{n}.py.", tool_calls=(call,)))
        messages.append(Message("tool", f"contents of f{n}.py\n" * 40, tool_call_id=call.id))
    return ModelRequest(
        messages=tuple(messages),
        tools=TOOLS,
        phase_id="p1",
        attempt=attempt,
        call_index=steps,
        max_tokens=1000,
    )


def marked(body: dict[str, Any]) -> list[str]:
    """Where the request body carries ``cache_control``, in prompt order."""
    places = [f"tools[{i}]" for i, t in enumerate(body.get("tools", [])) if "cache_control" in t]
    places += [f"system[{i}]" for i, b in enumerate(body.get("system", [])) if "cache_control" in b]
    for m, turn in enumerate(body["messages"]):
        places += [
            f"messages[{m}][{b}]"
            for b, block in enumerate(turn["content"])
            if "cache_control" in block
        ]
    return places


def test_anthropic_marks_the_stable_prefix_and_the_latest_turn(
    server: FakeServer, rig: DoorRig, keys: None
) -> None:
    model = AnthropicModel("claude-sonnet-4-6", base_url=server.anthropic_url)
    server.enqueue("anthropic", Reply(text="a"), Reply(text="b"), Reply(text="c"))
    for steps in (0, 1, 3):
        rig.door.complete(model, conversation(steps))
    first, second, third = (r.body for r in server.requests)

    assert marked(first) == ["tools[1]", "system[0]", "messages[0][0]"]
    assert marked(second) == ["tools[1]", "system[0]", "messages[0][0]", "messages[2][0]"]
    assert marked(third) == ["tools[1]", "system[0]", "messages[0][0]", "messages[6][0]"]
    assert third["messages"][6]["content"][0]["type"] == "tool_result"
    # The prefix is byte for byte the same on every step: tools, system, the brief.
    for body in (second, third):
        assert body["tools"] == first["tools"] and body["system"] == first["system"]
        assert body["messages"][0] == first["messages"][0]


def test_anthropic_cache_reads_and_writes_are_priced_by_tier(
    server: FakeServer, rig: DoorRig, keys: None
) -> None:
    model = AnthropicModel("claude-sonnet-4-6", base_url=server.anthropic_url)
    server.enqueue(
        "anthropic",
        Reply(text="a", input_tokens=100, cache_write=4000, output_tokens=50),
        Reply(text="b", input_tokens=100, cache_read=4000, cache_write=300, output_tokens=50),
        Reply(text="c", input_tokens=100, cache_write_1h=1000, output_tokens=50),
    )
    for steps in (0, 1, 2):
        rig.door.complete(model, conversation(steps))

    got = [(e.input_tokens, e.cache_read_tokens, e.cache_write_tokens) for e in rig.events]
    assert got == [(4100, 0, 4000), (4400, 4000, 300), (1100, 0, 1000)]
    # claude-sonnet-4-6: input 3, 5-minute write 3.75, 1-hour write 6, read 0.3, output 15.
    expected = [
        (100 * 3 + 4000 * 3.75 + 50 * 15) / 1e6,
        (100 * 3 + 4000 * 0.3 + 300 * 3.75 + 50 * 15) / 1e6,
        (100 * 3 + 1000 * 6.0 + 50 * 15) / 1e6,
    ]
    assert [e.cost_usd for e in rig.events] == pytest.approx(expected)
    assert rig.ledger.spent("p1").cost_usd == pytest.approx(sum(expected))
    assert rig.ledger.spent("p1").tokens == 4100 + 4400 + 1100 + 150
    assert all(e.usage_fault == "" for e in rig.events)


def test_openai_gets_one_cache_key_per_attempt_and_cached_tokens_are_read_back(
    server: FakeServer, rig: DoorRig, keys: None
) -> None:
    model = OpenAIModel("gpt-4.1", base_url=server.openai_url)
    server.enqueue(
        "openai",
        Reply(text="a", input_tokens=3000),
        Reply(text="b", input_tokens=3200, cache_read=2944),
        Reply(text="c", input_tokens=3000),
    )
    rig.door.complete(model, conversation(0))
    rig.door.complete(model, conversation(1))
    rig.door.complete(model, conversation(0, attempt=2))

    keys_sent = [r.body["prompt_cache_key"] for r in server.requests]
    assert keys_sent[0] == keys_sent[1] == "autopack:builder:p1:1"
    assert keys_sent[2] == "autopack:builder:p1:2"
    second = rig.events[1]
    assert (second.input_tokens, second.cache_read_tokens, second.cache_write_tokens) == (
        3200,
        2944,
        0,
    )
    # gpt-4.1: input 2.0, cached input 0.5, output 8.0 per million.
    assert second.cost_usd == pytest.approx((256 * 2.0 + 2944 * 0.5 + 5 * 8.0) / 1e6)


def test_a_compatible_server_gets_no_openai_only_cache_key(server: FakeServer) -> None:
    model = OpenAIModel("qwen", provider="ollama", base_url=server.openai_url, api_key_env=None)
    server.enqueue("openai", Reply(text="a"))
    rig = DoorRig(None)
    rig.door.prices = PriceTable.default(
        {"ollama:qwen": {"input_per_mtok": 0, "output_per_mtok": 0}}
    )
    rig.door.complete(model, conversation(0))
    assert "prompt_cache_key" not in server.requests[0].body


def test_the_reservation_holds_a_prompt_written_to_the_cache_in_full(
    server: FakeServer, make_rig: Any, keys: None
) -> None:
    """A cache write costs more than plain input: a cap between the two worst cases refuses
    the call before anything is sent; at the dearer one, even a reply that says every
    prompt token was written to the cache stays within the cap."""
    model = AnthropicModel("claude-sonnet-4-6", base_url=server.anthropic_url)
    request = conversation(0)
    price = PriceTable.default().price_for(model.spec)
    prompt = estimate_prompt_tokens(request)
    plain = price.cost(prompt, request.max_tokens)
    worst = price.worst_cost(prompt, request.max_tokens)
    assert worst > plain

    tight = make_rig(Caps(cost_usd=(plain + worst) / 2))
    with pytest.raises(BudgetExceeded):
        tight.door.complete(model, request)
    assert server.requests == []

    fits = make_rig(Caps(cost_usd=worst))
    server.enqueue(
        "anthropic",
        Reply(text="a", input_tokens=0, cache_write=prompt, output_tokens=request.max_tokens),
    )
    fits.door.complete(model, request)
    assert fits.ledger.spent().cost_usd <= worst + 1e-12
    assert fits.events[0].usage_fault == ""

    # Autopack never asks for the 1-hour cache; a report of 1-hour writes (dearer still)
    # is charged within the reservation all the same.
    hour = make_rig(Caps(cost_usd=worst))
    server.enqueue(
        "anthropic",
        Reply(text="b", input_tokens=0, cache_write_1h=prompt, output_tokens=request.max_tokens),
    )
    hour.door.complete(model, request)
    assert 0 < hour.ledger.spent().cost_usd <= worst + 1e-12


def test_cached_parts_above_the_prompt_are_held_to_it(
    server: FakeServer, rig: DoorRig, keys: None
) -> None:
    model = OpenAIModel("gpt-4.1", base_url=server.openai_url)
    server.enqueue("openai", Reply(text="a", input_tokens=100, cache_read=5000))
    rig.door.complete(model, conversation(0))
    (event,) = rig.events
    assert event.cache_read_tokens == 100
    assert "cached tokens 5000 are above the prompt's 100" in event.usage_fault


def test_price_tiers_come_from_the_config_and_a_wrong_key_is_named() -> None:
    table = PriceTable.default(
        {"openai-compatible:local": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
    )
    local = table.price_for("openai-compatible:local")
    assert local.rates() == (1.0, 1.0, 1.0, 1.0)  # no discount is ever assumed
    haiku = table.price_for("anthropic:claude-haiku-4-5")
    assert haiku.rates() == (1.0, 1.25, 2.0, 0.1)
    with pytest.raises(UnknownPrice, match="cache_reads_per_mtok"):
        PriceTable.default(
            {"x:y": {"input_per_mtok": 1, "output_per_mtok": 2, "cache_reads_per_mtok": 0.1}}
        )
