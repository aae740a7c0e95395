"""Fixtures: the offline MiniLM embedder (loaded once) and a repository with two runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from memory_helpers import fixed_run, write_runs

from autopack.memory.embed import MiniLMEmbedder


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_runs(
        tmp_path,
        [fixed_run("run-1", "2026-11-24T10:00:00Z"), fixed_run("run-2", "2026-11-25T10:00:00Z")],
    )
    return tmp_path
