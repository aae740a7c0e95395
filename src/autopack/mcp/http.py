"""The MCP server over Streamable HTTP at ``/mcp`` of the API, behind its API keys.

Every request is authenticated as an API request is (the same key lookup, the same
per-key rate limit) before the MCP transport sees it; the caller rides in the request's
state to the tools, which check its scope. Stateless: each POST stands alone, so a
revoked key is refused on its next request and nothing is kept between requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from autopack.api.auth import Caller, RateLimiter, authenticate
from autopack.api.errors import ApiError, error_response
from autopack.mcp.server import Access, build_server

if TYPE_CHECKING:
    from fastapi import FastAPI

    from autopack.api.context import ApiContext

PATH = "/mcp"


def mount_mcp(app: FastAPI) -> MCPServer:
    """Serve MCP at :data:`PATH`; the app's lifespan must run ``session_manager.run()``."""
    ctx: ApiContext = app.state.ctx
    server = build_server(Access(ctx, lambda: app.state.executor, request_caller))
    server.streamable_http_app(  # creates the session manager the route below serves
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        host=ctx.config.host,
    )
    gate = KeyGate(StreamableHTTPASGIApp(server.session_manager), ctx, lambda: app.state.limiter)
    app.router.routes.append(Route(PATH, endpoint=gate, methods=["GET", "POST", "DELETE"]))
    return server


class KeyGate:
    """ASGI: refuse a request without a valid key (401) or over its rate (429), as the
    API does, with the API's error body; otherwise hand it on with the caller."""

    def __init__(self, app: ASGIApp, ctx: ApiContext, limiter: Callable[[], RateLimiter]) -> None:
        self.app = app
        self.ctx = ctx
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            caller = authenticate(self.ctx, Request(scope))
            wait = self.limiter().take(caller.key_id)
            if wait:
                retry = str(max(1, round(wait)))
                message = f"rate limit reached; retry in {retry}s"
                raise ApiError(429, "rate_limited", message, headers={"Retry-After": retry})
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def request_caller(context: Context) -> Caller:
    """The caller :class:`KeyGate` put on the HTTP request being handled."""
    request = context.request_context.request
    caller = getattr(getattr(request, "state", None), "caller", None)
    if not isinstance(caller, Caller):
        raise ToolError("unauthorized: an API key is required (Authorization: Bearer <key>)")
    return caller
