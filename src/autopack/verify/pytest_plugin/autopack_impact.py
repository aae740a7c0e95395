"""pytest plugin: record which lines each test executes, for test-impact selection.

Loaded only into the baseline run (``-p autopack_impact`` with this folder on
``PYTHONPATH``), it starts coverage itself and switches the coverage context to each
test's node ID, so the data says, per line, which tests ran it. An interpreter without
coverage records nothing (selection falls back to the import graph): Autopack's own
plugin must never be the reason a project's baseline cannot run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

_state: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("AUTOPACK_COVERAGE_FILE")
    if path and "cov" not in _state:
        try:
            import coverage
        except ImportError:
            return
        cov = coverage.Coverage(data_file=path, source=[str(config.rootpath)])
        # The project's own coverage config is read too; its ``parallel = true`` would
        # add a suffix to the data file's name, and the map would silently be lost.
        cov.config.parallel = False
        cov.start()
        _state["cov"] = cov


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    cov = _state.get("cov")
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    if cov is not None:
        cov.switch_context("")


def pytest_unconfigure(config: pytest.Config) -> None:
    cov = _state.pop("cov", None)
    if cov is not None:
        cov.stop()
        cov.save()
