"""pytest plugin: rerun the tests that failed, inside the same pytest process.

Telling a flaky test from a regression used to cost one new pytest process per rerun
round (start-up and collection again, often longer than the tests themselves). Loaded
with ``-p autopack_rerun`` and ``AUTOPACK_RERUN_SPEC`` naming a JSON file, this plugin
reruns the tests that failed, after the session's own run, with every fixture torn
down and set up again, up to ``rounds`` times each (a test stops once it passes), until
one fails every time. The outcomes go to the spec's ``report`` file; Autopack's report
and the terminal keep the first run's outcomes.

Spec keys: ``rounds``; ``report`` (path); ``known_failing`` (IDs that were not passing
in the baseline: their failure is not news, so they are not rerun); ``fail_to_pass``
(if one of these does not pass, or any file fails to collect, the attempt is blocked
whatever the reruns say, so none run); ``repeat`` (IDs or files rerun ``rounds`` times even
when they passed: a new test must be stable, and a base-tree check looks for a flake). A
test's reruns stop once it has both passed and failed: it is intermittent either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

_state: dict[str, Any] = {}
FAILED, SKIPPED, PASSED = "failed", "skipped", "passed"


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("AUTOPACK_RERUN_SPEC")
    if path:
        _state.update(spec=json.loads(Path(path).read_text()), first={}, collect_failed=False)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if "spec" in _state and report.failed:
        _state["collect_failed"] = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "spec" in _state:
        first: dict[str, str] = _state["first"]
        first[report.nodeid] = _worse(first.get(report.nodeid, PASSED), _outcome([report]))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    result = yield
    spec = _state.get("spec")
    if spec is not None:
        reruns = {} if _blocked(spec) else _rerun(session.items, spec)
        Path(spec["report"]).write_text(json.dumps({"reruns": reruns}))
    return result


def _blocked(spec: dict[str, Any]) -> bool:
    """Whether the attempt fails whatever the reruns say: then nobody should wait for them.
    (A fail_to_pass test this run did not include is judged from the run that did.)"""
    first: dict[str, str] = _state["first"]
    failing = [t for t in spec["fail_to_pass"] if t in first and first[t] != PASSED]
    return _state["collect_failed"] or bool(failing)


def _rerun(items: Sequence[pytest.Item], spec: dict[str, Any]) -> dict[str, list[str]]:
    """Each failed test up to ``rounds`` times, until it passes or proves a regression.

    One test failing every round blocks the attempt, so the reruns stop there: the other
    failures could not change the verdict, and each rerun costs the Builder time.
    """
    first: dict[str, str] = _state["first"]
    known, repeat = set(spec["known_failing"]), set(spec.get("repeat", ()))
    outcomes: dict[str, list[str]] = {}
    for item in items:
        failed = first.get(item.nodeid) == FAILED and item.nodeid not in known
        repeated = item.nodeid in repeat or item.nodeid.split("::", 1)[0] in repeat
        if not failed and not repeated:
            continue
        rounds = outcomes[item.nodeid] = []
        seen = {first.get(item.nodeid) == PASSED}
        while len(rounds) < int(spec["rounds"]) and len(seen) < 2:
            # nextitem=None: every fixture, session-scoped ones too, is torn down after it.
            rounds.append(_outcome(runtestprotocol(item, log=False)))
            seen.add(rounds[-1] == PASSED)
        if failed and not repeated and PASSED not in rounds:
            break
    return outcomes


def _outcome(reports: Sequence[pytest.TestReport]) -> str:
    """One test's outcome over its setup, call and teardown reports: the worst wins."""
    outcome = PASSED
    for report in reports:
        if report.failed:
            return FAILED
        if report.skipped:
            outcome = SKIPPED
    return outcome


def _worse(a: str, b: str) -> str:
    order = (PASSED, SKIPPED, FAILED)
    return max(a, b, key=order.index)
