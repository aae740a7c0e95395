"""The HTTP API (FastAPI). ``autopack.main:app`` is the application object."""

from __future__ import annotations

from fastapi import FastAPI

from autopack import __version__


def create_app() -> FastAPI:
    """Build the application; routes beyond ``/health`` are added by their rooms."""
    app = FastAPI(title="Autopack", version=__version__)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok", "version": __version__}

    return app
