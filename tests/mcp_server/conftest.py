"""Fixtures: a repository with ledgers, runs waiting for a person and an indexed memory;
the API serving it on a live port, with a key of each scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_helpers import LiveServer, Served, make_repo, waiting_run

from autopack.api import ApiConfig, create_app
from autopack.memory.service import MemoryService
from autopack.store.keys import SCOPES, create_key


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    waiting_run(root, "waits-approve")
    waiting_run(root, "waits-reject")
    service = MemoryService.for_repo(root)
    service.index_repo(root, force=True)
    service.keyword.db.close()
    return root


@pytest.fixture
def served(repo: Path) -> Iterator[Served]:
    app = create_app(ApiConfig(repo=repo, executor=False))
    engine = app.state.ctx.rt.store.engine
    secrets = {scope: create_key(engine, f"{scope}-agent", scope)[1] for scope in SCOPES}
    with LiveServer(app) as server:
        yield Served(server.url, secrets)
