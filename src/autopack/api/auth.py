"""Who is calling: API keys with ordered scopes, and a rate limit per key.

A key travels as ``Authorization: Bearer <secret>``, ``X-API-Key`` or, for the
dashboard (whose EventSource cannot set headers), the HttpOnly cookie that
``POST /auth/session`` sets. No-auth mode, when switched on for a loopback server,
treats every caller as a local admin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autopack.api.context import ApiContext
from autopack.api.errors import ApiError
from autopack.store.keys import ACTIVE_KEY, SCOPES, hash_secret

COOKIE = "autopack_key"
LOCAL = "local"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    key_id: str
    name: str
    scope: str

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


class RateLimiter:
    """A token bucket per key: ``burst`` at once, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is free."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def presented_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or request.cookies.get(COOKIE) or None


def authenticate(ctx: ApiContext, request: Request) -> Caller:
    """The caller behind the request's key; raises 401 when there is none or it is revoked."""
    if ctx.config.no_auth:
        return Caller(LOCAL, "no-auth (loopback)", "admin")
    secret = presented_secret(request)
    if secret is None:
        raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
    key = ctx.rt.store.read_first(ACTIVE_KEY, key_hash=hash_secret(secret))
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    key_id, name, scope = key
    return Caller(str(key_id), str(name), str(scope))


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


BEARER = HTTPBearer(auto_error=False, description="An API key from `autopack keys create`.")


def requires(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: authenticate, check ``scope``, spend one request of the key's rate.

    It runs on the event loop (its one indexed lookup is shorter than a thread hop).
    """

    async def dependency(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
    ) -> Caller:
        ctx: ApiContext = request.app.state.ctx
        caller = authenticate(ctx, request)
        if not caller.allows(scope):
            raise ApiError(403, "forbidden", f"this needs a key with scope {scope!r}")
        limiter: RateLimiter = request.app.state.limiter
        wait = limiter.take(caller.key_id)
        if wait:
            retry = str(max(1, round(wait)))
            message = f"rate limit reached; retry in {retry}s"
            raise ApiError(429, "rate_limited", message, headers={"Retry-After": retry})
        request.state.caller = caller
        return caller

    return dependency


READ = requires("read")
OPERATE = requires("operate")
ADMIN = requires("admin")
