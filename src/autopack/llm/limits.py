"""Limits per model: reply length, context window and time per call.

One constant for every model does not fit: a hosted model stops when it is done, a
small local model may generate until it is cut off, at a few tokens a second. The
defaults live in ``limits.toml`` next to this module (data, not code), with a default
per provider and one for any other model; ``[models.limits."provider:name"]`` in the
configuration overrides them key by key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

_DATED = re.compile(r"-\d{8}$|-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ModelLimits:
    """What one model is held to."""

    max_output_tokens: int
    """Most tokens one reply may have; a request asking for more is lowered to this."""
    context_window: int
    """Tokens the model reads at most: prompt plus reply."""
    call_seconds: float
    """Longest one call may take before it is abandoned."""


class LimitTable:
    """Limits by model spec, each key resolved from the most specific entry that has it."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], configured: set[str]) -> None:
        self._entries = {spec: dict(entry) for spec, entry in entries.items()}
        self._configured = configured

    @classmethod
    def default(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> LimitTable:
        """The package table with the configuration's ``[models.limits]`` on top."""
        text = resources.files("autopack.llm").joinpath("limits.toml").read_text("utf-8")
        entries: dict[str, dict[str, Any]] = {k: dict(v) for k, v in tomllib.loads(text).items()}
        configured: set[str] = set()
        for spec, given in (overrides or {}).items():
            for key, value in given.items():
                if value is not None:
                    entries.setdefault(spec, {})[key] = value
                    configured.add(f"{spec}\0{key}")
        return cls(entries, configured)

    def for_spec(self, spec: str) -> ModelLimits:
        """The limits of ``spec`` (``provider:name``)."""
        values = {f.name: self._lookup(spec, f.name)[0] for f in fields(ModelLimits)}
        return ModelLimits(
            max_output_tokens=int(values["max_output_tokens"]),
            context_window=int(values["context_window"]),
            call_seconds=float(values["call_seconds"]),
        )

    def configured(self, spec: str, key: str) -> bool:
        """Whether the configuration itself set ``key`` for ``spec`` (not a package default)."""
        return f"{self._lookup(spec, key)[1]}\0{key}" in self._configured

    def _lookup(self, spec: str, key: str) -> tuple[Any, str]:
        provider = spec.split(":", 1)[0]
        for candidate in (spec, _DATED.sub("", spec), f"{provider}:*", "*"):
            entry = self._entries.get(candidate)
            if entry is not None and key in entry:
                return entry[key], candidate
        raise KeyError(f"limits.toml has no default {key!r}")
