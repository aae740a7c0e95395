"""The HTTP API (FastAPI) and the dashboard it serves. ``autopack.main:app`` is the app.

Every route but ``/health`` and the dashboard's static shell (which holds no data and
must be reachable to show the sign-in form) needs an API key; so does ``/mcp``, the
MCP server (:mod:`autopack.mcp`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from autopack import __version__
from autopack.api import autopilots, knowledge, metrics, runs
from autopack.api.auth import COOKIE, RateLimiter, presented_secret
from autopack.api.context import ApiConfig, ApiContext
from autopack.api.errors import documented, install_error_handlers
from autopack.api.executor import EmbeddedExecutor, RunHost
from autopack.api.models import WhoAmI
from autopack.api.runs import Reader
from autopack.api.stream import EventHub, all_events
from autopack.mcp.http import mount_mcp

if TYPE_CHECKING:
    from autopack.forge.watch import PrWatcher

WEB = Path(str(resources.files("autopack") / "web" / "static"))

__all__ = ["ApiConfig", "create_app"]


def create_app(config: ApiConfig | None = None) -> FastAPI:
    """Build the application for one repository (default: ``$AUTOPACK_REPO`` or the cwd)."""
    ctx = ApiContext(config or ApiConfig())
    app = FastAPI(title="Autopack", version=__version__, lifespan=_lifespan)
    app.state.ctx = ctx
    app.state.hub = EventHub()
    app.state.executor = None
    app.state.limiter = RateLimiter(ctx.config.rate_per_s, ctx.config.rate_burst)
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the process serves requests. Needs no key."""
        return {"status": "ok", "version": __version__}

    app.include_router(runs.router)
    app.include_router(knowledge.router)
    app.include_router(metrics.router)
    app.include_router(autopilots.router)
    app.state.mcp = mount_mcp(app)
    _session_routes(app)
    _dashboard(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: ApiContext = app.state.ctx
    app.state.hub.attach(ctx.rt.store)
    watcher = None
    if ctx.config.executor:
        host = _host(ctx)
        await anyio.to_thread.run_sync(host.start)
        app.state.executor = host
        watcher = _pr_watcher(ctx, host)
    try:
        async with app.state.mcp.session_manager.run():
            yield
    finally:
        if watcher is not None:
            watcher.stop()
        if app.state.executor is not None:
            app.state.executor.stop()


def _pr_watcher(ctx: ApiContext, host: RunHost) -> PrWatcher | None:
    """Pull requests of ended runs and approvals from reviews, when ``[pr]`` asks."""
    settings = ctx.rt.settings.pr
    if not (settings.open_on_finish or settings.sync_approvals):
        return None
    from autopack.forge.watch import PrWatcher  # the forge clients, only if used

    watcher = PrWatcher(ctx.rt, host, settings)
    watcher.start()
    return watcher


def _host(ctx: ApiContext) -> RunHost:
    config = ctx.config
    if config.engine != "temporal":
        return EmbeddedExecutor(ctx.rt)
    from autopack.engine.temporal_host import TemporalHost  # the Temporal SDK, only if used

    assert config.temporal is not None, "ApiConfig checks the temporal engine has an address"
    return TemporalHost(
        ctx.rt.store,
        ctx.rt.settings,
        address=config.temporal,
        repo_url=config.repo_url or str(ctx.rt.repo),
        clones=ctx.rt.state_dir / "clones",
        task_queue=config.task_queue,
        model_override=ctx.rt.model_override,
    )


def _session_routes(app: FastAPI) -> None:
    errors = documented(401, 403, 429)

    @app.get("/auth/whoami", response_model=WhoAmI, tags=["auth"], responses=errors)
    def whoami(caller: Reader) -> WhoAmI:
        """The key this request was made with (the dashboard hides what it may not do)."""
        return WhoAmI(key_id=caller.key_id, name=caller.name, scope=caller.scope)

    @app.post("/auth/session", status_code=204, tags=["auth"], responses=errors)
    def sign_in(request: Request, response: Response, _: Reader) -> None:
        """Keep the presented key in an HttpOnly cookie, for the dashboard's event streams."""
        secret = presented_secret(request)
        if secret:
            response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/")

    @app.post("/auth/signout", status_code=204, tags=["auth"])
    def sign_out(response: Response) -> None:
        """Forget the dashboard's cookie."""
        response.delete_cookie(COOKIE, path="/")

    @app.get(
        "/events",
        tags=["runs"],
        response_model=None,
        responses={
            200: {
                "description": "Server-sent notices: which run has a new event.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **errors,
        },
    )
    def every_run_events(request: Request, _: Reader) -> StreamingResponse:
        """A notice for every new event of any run, for live lists (not resumable)."""
        hub: EventHub = request.app.state.hub
        store = request.app.state.ctx.rt.store
        hub.attach(store)
        return StreamingResponse(
            all_events(hub, store),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )


def _dashboard(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})
