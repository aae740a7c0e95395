"""Seed-compatible entry point: ``python -m uvicorn autopack.main:app``."""

from autopack.api import create_app

app = create_app()
