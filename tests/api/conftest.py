"""Fixtures: a git repository, the app serving it (no executor) and a key per scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import make_repo
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autopack.api import ApiConfig, create_app
from autopack.store.keys import SCOPES, create_key


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def app(repo: Path) -> FastAPI:
    return create_app(ApiConfig(repo=repo, executor=False))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def keys(app: FastAPI, client: TestClient) -> dict[str, dict[str, str]]:
    """Headers carrying a key of each scope: ``keys["read"]``, ``keys["operate"]``, ..."""
    engine = app.state.ctx.rt.store.engine
    found = {}
    for scope in SCOPES:
        _, secret = create_key(engine, f"{scope}-tester", scope)
        found[scope] = {"Authorization": f"Bearer {secret}"}
    return found
