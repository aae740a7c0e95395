"""The scripted model: replies read from a file, for demos, tests and reproducible examples.

The format is documented in ``docs/scripted-model.md`` and kept stable. In short::

    version: 1
    latency_seconds: 0          # optional: wait this long before each reply
    replies:
      <phase id or "*">:
        builder:                # replies in order, one per call
          - |
            <edits, e.g. search/replace blocks>
        auditor:
          - {verdict: approve, summary: "Looks right."}

A reply is a string (the assistant's text), or a mapping: ``{verdict: ...}`` for the
Auditor (sent back as JSON), or ``{text: ..., tool_calls: [{name, arguments}]}``.
The reply for a call is picked by the request's ``call_index``, which the door
derives from the run's recorded calls, so a resumed run gets the same replies.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autopack.llm.base import ModelRequest, ModelResponse, ToolCall, Usage
from autopack.llm.errors import MalformedReply, ScriptError, ScriptExhausted
from autopack.safeyaml import YamlRefused, load_yaml

ROLES = ("planner", "builder", "auditor")


@dataclass
class Script:
    """A parsed script file."""

    replies: dict[str, dict[str, list[Any]]]
    latency_seconds: float = 0.0
    source: str = "<script>"

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """The script in ``path``, parsed once while the file is unchanged.

        A run resolves its model for every step; parsing the YAML again each time cost
        several milliseconds a phase. Replies are only read, so one parse is shared.
        """
        path = Path(path)
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
            found = _LOADED.get(key)
            if found is None:
                data, _ = load_yaml(path.read_text(encoding="utf-8"), str(path))
                found = cls.from_data(data, source=str(path))
                if len(_LOADED) >= SCRIPTS_KEPT:
                    _LOADED.clear()
                _LOADED[key] = found
        except (OSError, UnicodeDecodeError, yaml.YAMLError, YamlRefused) as exc:
            raise ScriptError(f"cannot read script {path}: {exc}") from exc
        return found

    @classmethod
    def from_data(cls, data: Any, source: str = "<script>") -> Script:
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ScriptError(f"{source}: a script is a mapping with 'version: 1'")
        unknown = set(data) - {"version", "latency_seconds", "replies"}
        if unknown:
            raise ScriptError(f"{source}: unknown keys {sorted(unknown)}")
        replies = data.get("replies") or {}
        if not isinstance(replies, dict):
            raise ScriptError(f"{source}: 'replies' must map phase ids to roles")
        for phase, roles in replies.items():
            if not isinstance(roles, dict) or not set(roles) <= set(ROLES):
                raise ScriptError(f"{source}: replies.{phase} must map roles {ROLES} to lists")
            for role, items in roles.items():
                if not isinstance(items, list):
                    raise ScriptError(f"{source}: replies.{phase}.{role} must be a list")
        latency = data.get("latency_seconds", 0) or 0
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise ScriptError(f"{source}: latency_seconds must be a number of seconds")
        if not 0 <= latency <= MAX_LATENCY_S:
            raise ScriptError(f"{source}: latency_seconds must be from 0 to {MAX_LATENCY_S:g}")
        return cls(replies=replies, latency_seconds=float(latency), source=source)

    def reply(self, role: str, phase: str | None, index: int) -> Any:
        for key in (phase or "*", "*"):
            items = self.replies.get(key, {}).get(role)
            if items is not None:
                if index < len(items):
                    return items[index]
                raise ScriptExhausted(
                    f"script {self.source} has no {role} reply #{index + 1} for phase {key!r} "
                    f"(it has {len(items)})"
                )
        raise ScriptExhausted(f"script {self.source} has no {role} replies for phase {phase!r}")


MAX_LATENCY_S = 600.0
"""Longest wait before a reply a script may ask for (NaN and infinity are refused too)."""
SCRIPTS_KEPT = 8
"""Parsed scripts kept (a run uses one or a few: one per role at most)."""
_LOADED: dict[tuple[str, int, int], Script] = {}
"""Parsed scripts by resolved path, modification time and size; each thread returns the
script it found or parsed itself, so a concurrent clear cannot lose it."""


class ScriptedModel:
    """A :class:`~autopack.llm.base.Model` that answers from a :class:`Script`."""

    def __init__(self, script: Script, name: str = "") -> None:
        self.script = script
        self.spec = f"scripted:{name or script.source}"

    def complete(self, request: ModelRequest) -> ModelResponse:
        reply = self.script.reply(request.role, request.phase_id, request.call_index)
        if self.script.latency_seconds:
            time.sleep(self.script.latency_seconds)
        text, calls = _render(reply, request.call_index)
        prompt_chars = sum(len(message.content) for message in request.messages)
        usage = Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=max(1, len(text) // 4))
        stop = "tool_use" if calls else "end_turn"
        return ModelResponse(
            text=text, tool_calls=calls, usage=usage, stop_reason=stop, model=self.spec
        )


def _render(reply: Any, index: int) -> tuple[str, tuple[ToolCall, ...]]:
    if isinstance(reply, str):
        return reply, ()
    if isinstance(reply, dict) and "verdict" in reply:
        return json.dumps(reply, sort_keys=True), ()
    if isinstance(reply, dict):
        text = str(reply.get("text", ""))
        return text, _tool_calls(reply.get("tool_calls", []), index, text)
    raise ScriptError(f"a reply must be text or a mapping, not {type(reply).__name__}")


def _tool_calls(raw: Any, index: int, text: str) -> tuple[ToolCall, ...]:
    """The reply's tool calls; a malformed one is what a model's malformed call is, a
    :class:`MalformedReply` (repaired once, then the attempt fails), never a crash."""
    problem = ""
    if not isinstance(raw, list):
        problem = "tool_calls must be a list"
    calls = []
    for n, call in enumerate(raw if isinstance(raw, list) else []):
        name = call.get("name") if isinstance(call, dict) else None
        arguments = call.get("arguments", {}) if isinstance(call, dict) else None
        if not isinstance(name, str) or not isinstance(arguments, dict):
            problem = f"tool call #{n + 1} needs a name (text) and arguments (a mapping)"
            break
        calls.append(ToolCall(id=f"call_{index}_{n}", name=name, arguments=arguments))
    if problem:
        response = ModelResponse(text=text, usage=Usage(1, max(1, len(text) // 4)))
        raise MalformedReply(f"scripted reply #{index + 1}: {problem}", response=response)
    return tuple(calls)


def build(provider: str, name: str, options: dict[str, Any]) -> ScriptedModel:
    """The registry's constructor (``llm/providers.py``): ``name`` is the script's path."""
    return ScriptedModel(Script.load(name), name=name)
