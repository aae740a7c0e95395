"""HTTP failures are classified once, and the backoff stays within its bounds."""

from __future__ import annotations

import email.utils
import time

import pytest

from autopack.llm.door import RetryPolicy
from autopack.llm.errors import (
    AuthError,
    ContextTooLong,
    InvalidRequest,
    ModelError,
    Overloaded,
    ProviderTimeout,
    RateLimited,
)
from autopack.llm.sdk_errors import ProviderInfo, from_status, retry_after_seconds

INFO = ProviderInfo("openai", "gpt-4.1", "OPENAI_API_KEY")


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (401, "Incorrect API key provided", AuthError),
        (403, "forbidden", AuthError),
        (429, "You exceeded your current quota (insufficient_quota)", AuthError),
        (429, "Rate limit reached", RateLimited),
        (408, "request timeout", ProviderTimeout),
        (409, "conflict", Overloaded),
        (500, "internal", Overloaded),
        (529, "overloaded", Overloaded),
        (413, "request too large", ContextTooLong),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", ContextTooLong),
        (400, "the request exceeds the available context size", ContextTooLong),
        (400, "temperature must be at most 2", InvalidRequest),
        (404, "The model `gpt-9` does not exist", InvalidRequest),
    ],
)
def test_statuses_map_to_one_error_each(status: int, message: str, kind: type[ModelError]) -> None:
    error = from_status(status, message, {}, INFO)
    assert type(error) is kind
    assert "openai" in str(error) and message in str(error)
    if error.environment:
        assert "models.providers.openai" in str(error) or "--model" in str(error)


def test_retry_after_in_seconds_milliseconds_or_a_date() -> None:
    assert retry_after_seconds({"retry-after": "12"}) == 12.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds({"retry-after": soon}) or 0) <= 31
    assert retry_after_seconds({"retry-after": "whenever"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_doubles_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5)
    for retry, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8), (4, 8)]):
        waits = {policy.delay(retry) for _ in range(50)}
        assert all(low <= w <= high for w in waits) and len(waits) > 1
    assert policy.delay(0, retry_after=20.0) == 20.0
    assert RetryPolicy(max_retry_after=60).delay(0, retry_after=3600) == 60
