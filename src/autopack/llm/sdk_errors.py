"""Turning the official SDKs' exceptions into Autopack's error classes, in one place.

The Anthropic and OpenAI SDKs share a shape (``APIStatusError`` with a status code and
the HTTP response, ``APITimeoutError``, ``APIConnectionError``), so one table of HTTP
statuses serves both and every OpenAI-compatible server. The SDKs' own retries are
switched off by the providers: the door retries, with the backoff policy of the run.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from autopack.llm.cassette import redact
from autopack.llm.errors import (
    AuthError,
    ConnectionDropped,
    ContextTooLong,
    InvalidRequest,
    ModelError,
    Overloaded,
    ProviderTimeout,
    RateLimited,
)

_CONTEXT_MARKERS = (
    "prompt is too long",
    "context length",
    "context_length",
    "context size",
    "context window",
    "maximum context",
    "too many tokens",
    "input is too long",
)


@dataclass(frozen=True)
class ProviderInfo:
    """What an error message needs to tell a person which setting to fix."""

    provider: str
    model: str
    key_env: str | None
    base_url: str | None = None

    def key_hint(self) -> str:
        setting = f"models.providers.{self.provider}.api_key_env"
        if self.key_env is None:
            return f"set {setting} to the env var that holds the key"
        return f"check the key in ${self.key_env} (the env var is set by {setting})"

    def check_key(self, key: str | None) -> None:
        """Refuse a missing key, or one HTTP cannot carry, before any request is made.

        A key is sent in a header, which holds printable ASCII only: a pasted typographic
        quote or a non-breaking space would otherwise surface as an encoding traceback.
        The message names the position, never the key.
        """
        if not key:
            raise AuthError(f"{self.provider}: no API key: {self.key_hint()}")
        bad = next((i for i, ch in enumerate(key) if not (ch.isascii() and ch.isprintable())), None)
        if bad is not None:
            raise AuthError(
                f"{self.provider}: the API key has a character a key cannot hold (not printable"
                f" ASCII) at position {bad + 1}; a pasted quote or space? {self.key_hint()}"
            )


def classify(exc: Exception, info: ProviderInfo, sdk: ModuleType) -> ModelError:
    """The Autopack error for an exception raised by the official SDK module ``sdk``."""
    if isinstance(exc, sdk.APITimeoutError):  # before its base class, APIConnectionError
        return ProviderTimeout(f"{info.provider}: the call to {info.model} timed out")
    if isinstance(exc, sdk.APIConnectionError):
        where = info.base_url or "the provider's endpoint"
        return ConnectionDropped(f"{info.provider}: connection to {where} failed: {exc}")
    if isinstance(exc, sdk.APIStatusError):
        return from_status(exc.status_code, redact(str(exc.message)), exc.response.headers, info)
    return ConnectionDropped(f"{info.provider}: unexpected failure: {redact(str(exc))}")


def from_status(
    status: int, message: str, headers: Mapping[str, str], info: ProviderInfo
) -> ModelError:
    """The Autopack error for an HTTP error status from a provider."""
    said = f"{info.provider} answered HTTP {status} for {info.model}: {message}"
    lowered = message.lower()
    if status in (401, 403):
        return AuthError(f"{said}. The credentials were refused: {info.key_hint()}.")
    if status == 429 and "insufficient_quota" in lowered:
        return AuthError(f"{said}. The account has no quota left: {info.key_hint()}.")
    if status == 429:
        return RateLimited(said, retry_after=retry_after_seconds(headers))
    if status == 408:
        return ProviderTimeout(said)
    if status == 409 or status >= 500:
        return Overloaded(said, retry_after=retry_after_seconds(headers))
    if status == 413 or any(marker in lowered for marker in _CONTEXT_MARKERS):
        return ContextTooLong(said)
    if status == 404:
        return InvalidRequest(
            f"{said}. Check the model name (models.<role> in autopack.toml or --model) "
            f"and models.providers.{info.provider}.base_url."
        )
    return InvalidRequest(
        f"{said}. Check the model name and models.providers.{info.provider} settings."
    )


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asked for: ``retry-after-ms``, or ``retry-after`` (seconds or date)."""
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None  # garbage: the door's own backoff applies
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: str | None) -> float | None:
    """A header's number of seconds; ``None`` unless it is a finite number, at least 0."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
