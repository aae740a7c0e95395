"""Token counts the door can compute before a call, without downloading a tokenizer."""

from __future__ import annotations

import json
import math

from autopack.llm.base import ModelRequest, ModelResponse

CHARS_PER_TOKEN = 3
"""Estimate divisor. Code and JSON tokenize denser than prose (about 3 characters per
token rather than 4), and under-counting would let a call overshoot a cap."""
MESSAGE_OVERHEAD_TOKENS = 8
"""Role markers and separators each message costs beyond its text."""
REQUEST_OVERHEAD_TOKENS = 16
"""The provider's own framing of a request."""


def estimate_prompt_tokens(request: ModelRequest) -> int:
    """A deterministic, deliberately pessimistic count of a request's prompt tokens.

    Characters of every message, tool call, tool definition and schema divided by
    :data:`CHARS_PER_TOKEN` (rounded up), plus a fixed overhead per message and request.
    The provider's reported usage settles the real count after the call.
    """
    chars = 0
    for message in request.messages:
        chars += len(message.content)
        chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    if request.json_schema is not None:
        chars += len(json.dumps(request.json_schema))
    overhead = REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(request.messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + overhead


def estimate_reply_tokens(response: ModelResponse) -> int:
    """Output tokens of a reply, for servers that report no usage (never zero: not free)."""
    chars = len(response.text)
    chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in response.tool_calls)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))
