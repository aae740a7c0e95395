"""Cassettes: every model exchange of a run, on disk, so the run can be replayed offline.

A cassette is append-only JSONL (``.autopack/runs/<run_id>/cassette.jsonl``). Each line
holds the normalised request (provider-independent, secrets redacted), its hash, and
either the response or the failure that changed what the door did next (a context
that was too long, a reply that did not parse), so a replay takes the same path.

:class:`ReplayModel` serves those lines by request hash with no provider reachable.
A request that was never recorded stops the replay with :class:`ReplayDivergence`,
showing a diff against the closest recorded request: silently calling a real model
would make the replay a different run.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autopack.llm.base import Message, ModelRequest, ModelResponse, ToolCall, Usage
from autopack.llm.errors import ContextTooLong, MalformedReply, ModelError, ReplayDivergence

CASSETTE_VERSION = 1
REDACTED = "[REDACTED]"
_SECRET_NAME = re.compile(r"(_API_KEY$|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}")
_MIN_SECRET_LENGTH = 8
"""Shorter env values (``TOKEN_LIMIT=1``) would redact every digit; real keys are longer."""

_extra_secret_env: set[str] = set()


def register_secret_env(name: str) -> None:
    """Treat the value of env var ``name`` as a secret even if its name does not look like one.

    Providers call this for a configured ``api_key_env`` such as ``OLLAMA_KEY``.
    """
    _extra_secret_env.add(name)


class Redactor:
    """Redaction with the secrets of the environment as it is now (read once, used often)."""

    def __init__(self) -> None:
        values = {
            value
            for name, value in os.environ.items()
            if (_SECRET_NAME.search(name) or name in _extra_secret_env)
            and len(value) >= _MIN_SECRET_LENGTH
        }
        self.secrets = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _KEY_SHAPES.sub(REDACTED, text)

    def data(self, value: Any) -> Any:
        """Every string inside JSON-like data, keys included, redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def mapping(self, value: dict[str, Any]) -> dict[str, Any]:
        return {self.text(str(k)): self.data(v) for k, v in value.items()}


def redact(text: str) -> str:
    """``text`` without secret env var values and without well-known API key shapes."""
    return Redactor().text(text)


def normalise_request(
    model: str, request: ModelRequest, redactor: Redactor | None = None
) -> dict[str, Any]:
    """The provider-independent, redacted form of a request; what is hashed and stored."""
    return (redactor or Redactor()).mapping(
        {
            "model": model,
            "messages": [_message_data(m) for m in request.messages],
            "tools": [
                {"name": t.name, "description": t.description, "parameters": t.parameters}
                for t in request.tools
            ],
            "json_schema": request.json_schema,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "role": request.role,
            "phase_id": request.phase_id,
            "attempt": request.attempt,
            "call_index": request.call_index,
        }
    )


def request_hash(normalised: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a normalised request."""
    canonical = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def response_data(response: ModelResponse, redactor: Redactor | None = None) -> dict[str, Any]:
    """A response as JSON-ready data (redacted)."""
    return (redactor or Redactor()).mapping(
        {
            "text": response.text,
            "tool_calls": [_call_data(c) for c in response.tool_calls],
            "usage": _usage_data(response.usage),
            "stop_reason": response.stop_reason,
            "model": response.model,
        }
    )


def _usage_data(usage: Usage) -> dict[str, int]:
    """Usage as data; cache counts only when there are any (older cassettes have none)."""
    data = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    for key in ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens"):
        if getattr(usage, key):
            data[key] = getattr(usage, key)
    return data


def response_from(data: dict[str, Any]) -> ModelResponse:
    """The inverse of :func:`response_data`."""
    return ModelResponse(
        text=data["text"],
        tool_calls=tuple(
            ToolCall(c["id"], c["name"], c["arguments"], c.get("error", ""))
            for c in data["tool_calls"]
        ),
        usage=Usage(**data["usage"]),
        stop_reason=data["stop_reason"],
        model=data["model"],
    )


class Cassette:
    """An append-only JSONL record of one run's model exchanges."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def for_run(cls, repo_root: str | Path, run_id: str) -> Cassette:
        """The cassette at ``<repo_root>/.autopack/runs/<run_id>/cassette.jsonl``."""
        return cls(Path(repo_root) / ".autopack" / "runs" / run_id / "cassette.jsonl")

    def record(
        self,
        request: ModelRequest,
        response: ModelResponse | None,
        *,
        model: str,
        error: ModelError | None = None,
    ) -> None:
        """Append one exchange: a response, or an error that changed what the door did."""
        redactor = Redactor()
        normalised = normalise_request(model, request, redactor)
        entry: dict[str, Any] = {
            "v": CASSETTE_VERSION,
            "hash": request_hash(normalised),
            "request": normalised,
        }
        if response is not None:
            entry["response"] = response_data(response, redactor)
        if error is not None:
            entry["error"] = {"type": type(error).__name__, "message": redactor.text(str(error))}
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)

    def entries(self) -> list[dict[str, Any]]:
        """Every recorded exchange, in order; a torn last line (crash mid-write) is skipped."""
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries


class ReplayModel:
    """A :class:`~autopack.llm.base.Model` that serves a recorded cassette by request hash.

    ``spec`` is the recorded model's spec, so prices and budgets match the original run.
    Identical requests are served in recording order.
    """

    def __init__(self, cassette_path: str | Path, inner_spec: str) -> None:
        self.spec = inner_spec
        self._entries = [
            e
            for e in Cassette(cassette_path).entries()
            if "request" in e and e["request"]["model"] == inner_spec  # not MCP exchanges
        ]
        self._source = str(cassette_path)
        self._by_hash: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self._entries:
            self._by_hash[entry["hash"]].append(entry)
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def complete(self, request: ModelRequest) -> ModelResponse:
        normalised = normalise_request(self.spec, request)
        digest = request_hash(normalised)
        with self._lock:
            recorded = self._by_hash.get(digest, [])
            index = self._served[digest]
            if index >= len(recorded):
                raise self._divergence(normalised, repeated=len(recorded))
            self._served[digest] += 1
        return _replayed(recorded[index])

    def _divergence(self, live: dict[str, Any], *, repeated: int) -> ReplayDivergence:
        if repeated:
            return ReplayDivergence(
                f"replay of {self._source}: this request was recorded {repeated} time(s) "
                "and is now asked once more"
            )
        closest = _closest(live, (e["request"] for e in self._entries))
        if closest is None:
            return ReplayDivergence(
                f"replay of {self._source}: no recorded request for model {self.spec!r}"
            )
        diff = "".join(
            difflib.unified_diff(
                _pretty(closest).splitlines(keepends=True),
                _pretty(live).splitlines(keepends=True),
                fromfile="recorded",
                tofile="requested",
            )
        )
        return ReplayDivergence(
            f"replay of {self._source}: the request differs from the recording", diff=diff
        )


def _replayed(entry: dict[str, Any]) -> ModelResponse:
    """The recorded response, or the recorded failure raised again."""
    response = response_from(entry["response"]) if "response" in entry else None
    error = entry.get("error")
    if error is None and response is not None:
        return response
    if error is not None and error["type"] == "MalformedReply":
        raise MalformedReply(error["message"], response=response)
    if error is not None and error["type"] == "ContextTooLong":
        raise ContextTooLong(error["message"])
    raise ReplayDivergence(f"cassette entry {entry.get('hash')} holds no response to replay")


def _closest(live: dict[str, Any], recorded: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    target = _pretty(live)
    best, best_ratio = None, -1.0
    for candidate in recorded:
        same_caller = (candidate["role"], candidate["phase_id"]) == (live["role"], live["phase_id"])
        ratio = difflib.SequenceMatcher(None, _pretty(candidate), target).ratio() + same_caller
        if ratio > best_ratio:
            best, best_ratio = candidate, ratio
    return best


def _pretty(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _message_data(message: Message) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [_call_data(c) for c in message.tool_calls],
        "tool_call_id": message.tool_call_id,
    }


def _call_data(call: ToolCall) -> dict[str, Any]:
    data = {"id": call.id, "name": call.name, "arguments": call.arguments}
    return {**data, "error": call.error} if call.error else data
