"""Anthropic's Messages API, with tool use, through the official ``anthropic`` SDK."""

from __future__ import annotations

import json
import os
from typing import Any

import anthropic

from autopack.llm.base import Message, ModelRequest, ModelResponse, ToolCall, Usage
from autopack.llm.errors import MalformedReply
from autopack.llm.sdk_errors import ProviderInfo, classify

DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_TIMEOUT_SECONDS = 600.0
MAX_CACHE_BREAKPOINTS = 4
"""Blocks marked ``cache_control`` the Messages API accepts in one request."""
SCHEMA_INSTRUCTION = (
    "Reply with only a JSON value that matches this JSON schema, with no prose and no "
    "code fence:\n{schema}"
)


class AnthropicModel:
    """A :class:`~autopack.llm.base.Model` backed by Anthropic's Messages API.

    The SDK's own retries are off: the door retries with the run's policy. A JSON
    schema is asked for in the system prompt (portable across models and SDK versions);
    the door validates the reply. ``temperature`` is not sent: current SDKs no longer
    accept it for the Messages API.
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.spec = f"anthropic:{name}"
        self.name = name
        self.timeout_seconds = timeout_seconds
        self.info = ProviderInfo("anthropic", name, api_key_env, base_url)
        self._key = os.environ.get(api_key_env)
        self._client = anthropic.Anthropic(
            api_key=self._key or "missing",
            base_url=base_url,
            timeout=timeout_seconds,
            max_retries=0,
        )

    def complete(self, request: ModelRequest) -> ModelResponse:
        self.info.check_key(self._key)
        system, messages = to_anthropic_messages(request.messages)
        if request.json_schema is not None:
            schema = SCHEMA_INSTRUCTION.format(schema=json.dumps(request.json_schema, indent=2))
            system = f"{system}\n\n{schema}" if system else schema
        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if system:
            kwargs["system"] = [{"type": "text", "text": system}]
        if request.tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        mark_cache_breakpoints(kwargs)
        try:
            reply = self._client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise classify(exc, self.info, anthropic) from exc
        return self._response(reply)

    def _response(self, reply: Any) -> ModelResponse:
        texts, calls, bad = [], [], []
        for block in reply.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                if isinstance(block.input, dict):
                    calls.append(ToolCall(block.id, block.name, dict(block.input)))
                else:
                    error = "they are not a JSON object"
                    calls.append(ToolCall(block.id, block.name, {}, error=error))
        response = ModelResponse(
            text="".join(texts),
            tool_calls=tuple(calls),
            usage=anthropic_usage(reply.usage),
            stop_reason=reply.stop_reason or "end_turn",
            model=self.spec,
        )
        if calls and response.stop_reason == "max_tokens":
            bad.append("the reply was cut off at max_tokens inside a tool call")
        if bad:
            raise MalformedReply(f"anthropic: {'; '.join(bad)}", response=response)
        return response


def anthropic_usage(usage: Any) -> Usage:
    """Reported usage; Anthropic counts cache writes and reads apart from ``input_tokens``.

    The write count is split by cache lifetime when the reply says (``cache_creation``);
    without that breakdown every write is taken as the 5-minute kind Autopack asks for.
    """
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    breakdown = getattr(usage, "cache_creation", None)
    written_1h = min((getattr(breakdown, "ephemeral_1h_input_tokens", None) or 0), written)
    return Usage(
        input_tokens=usage.input_tokens + written + read,
        output_tokens=usage.output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=written - written_1h,
        cache_write_1h_tokens=written_1h,
    )


def mark_cache_breakpoints(kwargs: dict[str, Any]) -> None:
    """Prompt-cache breakpoints on the stable prefix and on the latest turn.

    Anthropic caches the prompt up to each block marked ``cache_control`` and allows four
    marks per request. The stable prefix gets three: the last tool, the system prompt and
    the first message (the phase's brief, resent unchanged on every step); the latest
    turn gets the fourth, so the next step reads the whole conversation so far from the
    cache and pays full price only for what it adds.
    """
    marked: list[dict[str, Any]] = []
    if kwargs.get("tools"):
        marked.append(kwargs["tools"][-1])
    if kwargs.get("system"):
        marked.append(kwargs["system"][-1])
    messages = kwargs["messages"]
    for turn in (messages[:1] + messages[1:][-1:]) if messages else []:
        if turn["content"]:
            marked.append(turn["content"][-1])
    for block in marked[:MAX_CACHE_BREAKPOINTS]:
        block["cache_control"] = {"type": "ephemeral"}


def to_anthropic_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict[str, Any]]]:
    """System text and Messages API turns; tool results join the user turn that follows."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.content,
                }
            )
        elif message.content:
            blocks.append({"type": "text", "text": message.content})
        blocks.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in message.tool_calls
        )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        elif blocks:
            turns.append({"role": role, "content": blocks})
    return system, turns


def build(provider: str, name: str, options: dict[str, Any]) -> AnthropicModel:
    """The registry's constructor (``llm/providers.py``)."""
    return AnthropicModel(name, **options)


def models_request(base_url: str, key: str | None) -> tuple[str, dict[str, str]]:
    """The models list: the cheapest request that proves the address and the key."""
    return f"{base_url}/v1/models", {"x-api-key": key or "", "anthropic-version": "2023-06-01"}
