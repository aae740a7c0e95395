"""pytest plugin: Autopack's own record of a test run, written from inside pytest.

Loaded into every pytest run Autopack grades (``-p autopack_report`` with this folder on
``PYTHONPATH`` and ``AUTOPACK_REPORT_SPEC`` naming a JSON spec), it writes one JSON
object per line to the spec's ``report`` file, flushed as it goes:

- ``{"python": ..., "version": ..., "plugins": [...]}`` when pytest is configured;
- ``{"collect_error": nodeid}`` for each file that failed to collect;
- ``{"collected": [nodeid, ...], "deselected": [...], "excluded": n}`` once collection ends;
- ``{"start": nodeid}`` and ``{"test": nodeid, "outcome": ...}`` per test;
- ``{"finished": exitstatus}`` when the session ends.

Test IDs are pytest's own node IDs, so inherited and parametrized tests keep the names
``pytest --collect-only -q`` prints. A run that ends without the ``finished`` line (a
hook calling ``os._exit``, a crash, a timeout) is known to be incomplete, and the
``start`` line without its outcome names the test that hung.

Spec keys: ``report`` (path); ``exclude`` (node IDs or ID prefixes, e.g. files, already
graded by an earlier run of the same attempt: left out silently, counted as excluded).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

_state: dict[str, Any] = {}
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
ORDER = (PASSED, SKIPPED, FAILED, ERROR)


def _write(line: dict[str, Any]) -> None:
    """Append one line, closed at once: what was written survives an ``os._exit``."""
    out: Path | None = _state.get("out")
    if out is not None:
        with out.open("a") as stream:
            stream.write(json.dumps(line) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("AUTOPACK_REPORT_SPEC")
    if not path or "out" in _state:
        return
    spec = json.loads(Path(path).read_text())
    _state.update(out=Path(spec["report"]), exclude=tuple(spec.get("exclude", ())))
    _state.update(outcomes={}, deselected=[])
    plugins = sorted({f"{dist.project_name}-{dist.version}" for _, dist in _distributions(config)})
    _write({"python": sys.executable, "version": sys.version.split()[0], "plugins": plugins})


def _distributions(config: pytest.Config) -> list[tuple[Any, Any]]:
    return list(config.pluginmanager.list_plugin_distinfo())


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"collect_error": report.nodeid or str(report.fspath)})


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if "out" in _state:
        _state["deselected"].extend(item.nodeid for item in items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out what an earlier run of this attempt already graded (runs after the rest)."""
    exclude: tuple[str, ...] = _state.get("exclude", ())
    if exclude:
        kept = [item for item in items if not _excluded(item.nodeid, exclude)]
        _state["excluded"] = len(items) - len(kept)
        items[:] = kept


def _excluded(nodeid: str, exclude: tuple[str, ...]) -> bool:
    return any(nodeid == e or nodeid.startswith(e + "::") for e in exclude)


def pytest_collection_finish(session: pytest.Session) -> None:
    collected = [item.nodeid for item in session.items]
    deselected = _state.get("deselected", [])
    _write(
        {"collected": collected, "deselected": deselected, "excluded": _state.get("excluded", 0)}
    )


def pytest_runtest_logstart(nodeid: str) -> None:
    _write({"start": nodeid})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The worst of a test's setup, call and teardown; written once its teardown is logged."""
    if "out" not in _state:
        return
    outcomes: dict[str, str] = _state["outcomes"]
    outcome = _outcome(report)
    worst = max(outcomes.get(report.nodeid, PASSED), outcome, key=ORDER.index)
    outcomes[report.nodeid] = worst
    if report.when == "teardown":
        _write({"test": report.nodeid, "outcome": outcomes.pop(report.nodeid)})


def _outcome(report: pytest.TestReport) -> str:
    if report.failed:
        return FAILED if report.when == "call" else ERROR
    if report.skipped:
        return SKIPPED
    return PASSED


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"finished": int(exitstatus)})
    _state.pop("out", None)
