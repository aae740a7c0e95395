"""OpenAI's Chat Completions API with function calling, through the official ``openai`` SDK.

The same class serves any OpenAI-compatible server (Ollama, vLLM, llama.cpp's server,
OpenRouter) given its base URL; those differ in small ways handled here: they may
need no key, know only ``max_tokens``, and may report no usage.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from typing import Any

import openai

from autopack.llm.base import Message, ModelRequest, ModelResponse, ToolCall, Usage
from autopack.llm.cassette import register_secret_env
from autopack.llm.errors import MalformedReply
from autopack.llm.sdk_errors import ProviderInfo, classify
from autopack.llm.tokens import estimate_prompt_tokens, estimate_reply_tokens

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_SECONDS = 600.0
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
"""OpenAI's reasoning models refuse a temperature other than the default."""
_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIModel:
    """A :class:`~autopack.llm.base.Model` backed by a Chat Completions endpoint.

    ``provider`` is ``openai`` for OpenAI itself; any other name is an OpenAI-compatible
    server at ``base_url``, for which ``api_key_env`` may be ``None`` (no key needed).
    """

    def __init__(
        self,
        name: str,
        *,
        provider: str = "openai",
        base_url: str | None = None,
        api_key_env: str | None = DEFAULT_KEY_ENV,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.spec = f"{provider}:{name}"
        self.name = name
        self.timeout_seconds = timeout_seconds
        self.native = provider == "openai"
        self.info = ProviderInfo(provider, name, api_key_env, base_url)
        if api_key_env is not None:
            register_secret_env(api_key_env)
        self._key = os.environ.get(api_key_env) if api_key_env else "no-key-needed"
        self._client = openai.OpenAI(
            api_key=self._key or "missing",
            base_url=base_url,
            timeout=timeout_seconds,
            max_retries=0,
        )

    def complete(self, request: ModelRequest) -> ModelResponse:
        self.info.check_key(self._key)
        try:
            reply = self._client.chat.completions.create(**self._arguments(request))
        except openai.OpenAIError as exc:
            raise classify(exc, self.info, openai) from exc
        return self._response(request, reply)

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": [to_openai_message(m) for m in request.messages],
        }
        if self.native:
            kwargs["max_completion_tokens"] = request.max_tokens
            kwargs["prompt_cache_key"] = prompt_cache_key(request)
        else:
            kwargs["max_tokens"] = request.max_tokens
        if not (self.native and _REASONING_MODEL.match(self.name)):
            kwargs["temperature"] = request.temperature
        if request.tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema},
            }
        return kwargs

    def _response(self, request: ModelRequest, reply: Any) -> ModelResponse:
        if not reply.choices:
            raise MalformedReply(f"{self.info.provider}: the reply has no choices")
        choice = reply.choices[0]
        calls, bad = [], []
        for call in choice.message.tool_calls or []:
            name = call.function.name
            try:
                arguments = json.loads(call.function.arguments or "{}", parse_constant=_finite)
            except ValueError as exc:  # JSONDecodeError, or NaN / Infinity
                calls.append(ToolCall(call.id, name, {}, error=f"they are not JSON ({exc})"))
                continue
            if not isinstance(arguments, dict):
                calls.append(ToolCall(call.id, name, {}, error="they are not a JSON object"))
                continue
            calls.append(ToolCall(call.id, name, arguments))
        stop = _STOP_REASONS.get(choice.finish_reason or "stop", str(choice.finish_reason))
        response = ModelResponse(
            text=choice.message.content or "",
            tool_calls=tuple(calls),
            stop_reason=stop,
            model=self.spec,
        )
        response = _with_usage(response, request, reply.usage)
        if choice.message.tool_calls and stop == "max_tokens":
            bad.append("the reply was cut off at max_tokens inside a tool call")
        if bad:
            raise MalformedReply(f"{self.info.provider}: {'; '.join(bad)}", response=response)
        return response


def prompt_cache_key(request: ModelRequest) -> str:
    """One key per role, phase and attempt: OpenAI routes requests with the same key to
    the same cache, so the steps of one attempt read the prefix the step before wrote.
    Only stable names go in (no run id, path or time), so a replay sends the same key."""
    return f"autopack:{request.role}:{request.phase_id or '-'}:{request.attempt or 0}"


def _finite(constant: str) -> float:
    """Python's JSON parser accepts NaN and Infinity, which JSON does not: refuse them."""
    raise ValueError(f"{constant} is not a JSON number")


def _with_usage(response: ModelResponse, request: ModelRequest, usage: Any) -> ModelResponse:
    """Reported usage, or an estimate when a compatible server reports none (never free)."""
    if usage is not None and usage.prompt_tokens is not None:
        details = getattr(usage, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or 0
        reported = Usage(
            usage.prompt_tokens, usage.completion_tokens or 0, cache_read_tokens=cached
        )
    else:
        reported = Usage(estimate_prompt_tokens(request), estimate_reply_tokens(response))
    return replace(response, usage=reported)


def to_openai_message(message: Message) -> dict[str, Any]:
    """One Chat Completions message."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["content"] = message.content or None
        data["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    return data


def build(provider: str, name: str, options: dict[str, Any]) -> OpenAIModel:
    """The registry's constructor (``llm/providers.py``); an OpenAI-compatible server
    without ``api_key_env`` is called without a key."""
    options.setdefault("api_key_env", None)
    return OpenAIModel(name, provider=provider, **options)


def models_request(base_url: str, key: str | None) -> tuple[str, dict[str, str]]:
    """The models list: the cheapest request that proves the address and the key."""
    return f"{base_url}/models", ({"Authorization": f"Bearer {key}"} if key else {})
