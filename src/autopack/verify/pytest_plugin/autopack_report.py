"""pytest plugin: Autopack's own record of a test run, written from inside pytest.

Loaded into every pytest run Autopack grades (``-p autopack_report`` with this folder on
``PYTHONPATH`` and ``AUTOPACK_REPORT_SPEC`` naming a JSON spec), it writes one JSON
object per line to the spec's ``report`` file, flushed as it goes:

- ``{"collect_error": nodeid}`` for each file that failed to collect;
- ``{"collected": [nodeid, ...], "deselected": [...], "excluded": n}`` once collection ends;
- ``{"start": nodeid}`` and ``{"test": nodeid, "outcome": ...}`` per test;
- ``{"finished": exitstatus}`` when the session ends.

Test IDs are pytest's own node IDs, so inherited and parametrized tests keep the names
``pytest --collect-only -q`` prints. A run that ends without the ``finished`` line (a
hook calling ``os._exit``, a crash, a timeout) is known to be incomplete, and the
``start`` line without its outcome names the test that hung.

Spec keys: ``report`` (path); ``exclude`` (node IDs or ID prefixes, e.g. files, already
graded by an earlier run of the same attempt: left out silently, counted as excluded);
``first`` and ``continue`` (``known_failing``, ``fail_to_pass``): the whole suite is
collected once, the tests named in ``first`` (node IDs or files: the affected ones) run
before the rest, and the rest runs in the same process only when none of them that is not
in ``known_failing`` failed, no ``fail_to_pass`` among them failed and nothing failed to
collect: a landing attempt pays for one pytest start-up, and a failing one stops before
the rest. The report then says ``{"continued": true}`` (or ``false``). One collection,
not a second one in the same session: pytest binds a conftest's fixtures to the
directory nodes of the collection that loaded it, so a second collection would not see
them.
"""

from __future__ import annotations

import json
import os
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
    _state.update(outcomes={}, done={}, deselected=[], collect_failed=False)
    _state.update(proceed=spec.get("continue"), first=tuple(spec.get("first", ())))


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _state["collect_failed"] = True
        _write({"collect_error": report.nodeid or str(report.fspath)})


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if "out" in _state:
        _state["deselected"].extend(item.nodeid for item in items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out what an earlier run of this attempt already graded; put ``first`` first."""
    exclude: tuple[str, ...] = _state.get("exclude", ())
    if exclude:
        kept = [item for item in items if not _matches(item.nodeid, exclude)]
        _state["excluded"] = len(items) - len(kept)
        items[:] = kept
    if _state.get("proceed") is not None:
        first = [item for item in items if _matches(item.nodeid, _state["first"])]
        rest = [item for item in items if not _matches(item.nodeid, _state["first"])]
        _state["first_count"] = len(first)
        items[:] = first + rest


def _matches(nodeid: str, selectors: tuple[str, ...]) -> bool:
    return any(nodeid == s or nodeid.startswith(s + "::") for s in selectors)


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
        _state["done"][report.nodeid] = outcomes.pop(report.nodeid)
        _write({"test": report.nodeid, "outcome": _state["done"][report.nodeid]})


def _outcome(report: pytest.TestReport) -> str:
    if report.failed:
        return FAILED if report.when == "call" else ERROR
    if report.skipped:
        return SKIPPED
    return PASSED


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With ``continue`` in the spec: the ``first`` tests, then (if they are clean) the rest."""
    proceed = _state.get("proceed")
    if proceed is None or session.config.option.collectonly:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return None
    count = _state.get("first_count", 0)
    first, rest = list(session.items[:count]), list(session.items[count:])
    _run_items(session, first)
    if not _clean(proceed):
        _write({"continued": False})
        return True
    _write({"continued": True})
    _run_items(session, rest)
    return True


def _run_items(session: pytest.Session, items: list[pytest.Item]) -> None:
    """pytest's own run loop over ``items`` (the last one tears every fixture down)."""
    for index, item in enumerate(items):
        nextitem = items[index + 1] if index + 1 < len(items) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)


def _clean(proceed: dict[str, Any]) -> bool:
    """Whether nothing that ran so far already blocks the attempt."""
    done: dict[str, str] = _state["done"]
    known = set(proceed.get("known_failing", ()))
    failed = [t for t, o in done.items() if o in (FAILED, ERROR) and t not in known]
    fail_to_pass = [t for t in proceed.get("fail_to_pass", ()) if t in done and done[t] != PASSED]
    return not (failed or fail_to_pass or _state["collect_failed"])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"finished": int(exitstatus)})
    _state.pop("out", None)
