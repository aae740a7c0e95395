"""Fixtures for the model layer: the loopback server, provider keys, and a door."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer
from llm_rig import ANTHROPIC_KEY, OPENAI_KEY, DoorRig

from autopack.llm.cassette import Cassette
from autopack.llm.door import Caps


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)


@pytest.fixture
def rig(tmp_path: Path) -> DoorRig:
    return DoorRig(Cassette.for_run(tmp_path, "run-1"))


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., DoorRig]:
    def make(caps: Caps = Caps()) -> DoorRig:
        return DoorRig(Cassette.for_run(tmp_path, "run-1"), caps)

    return make
