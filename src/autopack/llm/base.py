"""The ``Model`` protocol: the one shape every provider, and the scripted model, speaks.

A request carries, besides what a provider needs, call metadata (role, phase,
attempt, call index) that the door uses for budgets and cassettes and the scripted
model uses to pick its reply. Providers never send the metadata anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["planner", "builder", "auditor"]


@dataclass(frozen=True)
class ToolCall:
    """A tool invocation the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any]
    error: str = ""
    """Why the arguments could not be read (not JSON, not an object): the call is then
    answered with this error instead of being run, which costs the model a step."""


@dataclass(frozen=True)
class Message:
    """One chat message; ``tool`` messages answer a ``ToolCall`` by id."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model, with a JSON schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """Tokens the provider reports for one call.

    ``input_tokens`` is the whole prompt; the ``cache_*`` counts say which part of it the
    provider wrote to (5-minute or 1-hour lifetime) or read from its prompt cache.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


@dataclass(frozen=True)
class ModelRequest:
    """Everything one model call needs, plus the metadata of who is calling."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 4096
    temperature: float = 0.0
    role: Role = "builder"
    phase_id: str | None = None
    attempt: int | None = None
    call_index: int = 0
    """How many calls this role made for this phase earlier in the run (resume-safe)."""


@dataclass(frozen=True)
class ModelResponse:
    """What came back: text and/or tool calls, usage and why the model stopped."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end_turn"
    model: str = ""


class Model(Protocol):
    """A chat model. ``spec`` is ``provider:name``, e.g. ``anthropic:claude-sonnet-4-6``."""

    spec: str

    def complete(self, request: ModelRequest) -> ModelResponse:
        """Run one call; raise a :class:`autopack.llm.errors.ModelError` on failure."""
        ...
