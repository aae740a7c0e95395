"""pytest plugin: Autopack's own record of a test run, written from inside pytest.

Loaded into every pytest run Autopack grades (``-p autopack_report`` with this folder on
``PYTHONPATH`` and ``AUTOPACK_REPORT_SPEC`` naming a JSON spec), it writes one JSON
object per line to the spec's ``report`` file, flushed as it goes:

- ``{"collect_error": nodeid}`` for each file that failed to collect;
- ``{"collected": [nodeid, ...], "deselected": [...], "excluded": n}`` once collection ends;
- ``{"start": nodeid}`` and ``{"test": nodeid, "outcome": ...}`` per test;
- ``{"tampered": what}`` once for each part of pytest the code under test replaced (see
  ``_guarded``), each plugin registered once collection began that is not a conftest,
  and each test reported as passed although its call raised (recorded as failed);
- ``{"finished": exitstatus}`` when the session ends.

Test IDs are pytest's own node IDs, so inherited and parametrized tests keep the names
``pytest --collect-only -q`` prints. A run that ends without the ``finished`` line (a
hook calling ``os._exit``, a crash, a timeout) is known to be incomplete, and the
``start`` line without its outcome names the test that hung.

Spec keys: ``report`` (path); ``exclude`` (node IDs or ID prefixes, e.g. files, already
graded by an earlier run of the same attempt: left out silently, counted as excluded);
``first`` and ``continue`` (``known_failing``, ``fail_to_pass``): the tests named in
``first`` (node IDs or files: the affected ones) run before the rest, and the rest runs in
the same process only when none of them that is not in ``known_failing`` failed, no
``fail_to_pass`` among them failed and nothing failed to collect: a landing attempt pays
for one pytest start-up, and a failing one stops before the rest. The report then says
``{"continued": true}`` (or ``false``).

Within ``first`` the ``fail_to_pass`` tests run before the other affected ones, and the
first part stops at the first test that blocks the attempt whatever else happens: a
``fail_to_pass`` test that does not pass, or a test outside ``known_failing`` that fails
and then fails each of ``proof_rounds`` reruns (a proven regression, not a flake). The
report then says ``{"stopped": [nodeid, ...], "by": nodeid}`` (the tests of ``first``
left unrun, and the test that stopped it): a failing attempt pays for what proves it
fails, not for every affected test.

The rest is collected lazily. The session's one collection walks the whole tree (every
directory, every conftest) but imports only the test files that hold a ``first`` test;
each other test file is a collector set aside unopened (``_deferred``). Only when the
rest is to run are those files collected, under the directory nodes of that same
collection, then filtered by the configuration's own ``pytest_collection_modifyitems``
(``-k``, ``-m``, ``--deselect``) and reported as a second ``collected`` line. A failing
attempt so never imports the test modules it does not run. Not a second
``perform_collect``: pytest binds a conftest's fixtures to the directory nodes of the
collection that loaded it, so new directory nodes would not see them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

_state: dict[str, Any] = {}
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
ORDER = (PASSED, SKIPPED, FAILED, ERROR)

# What decides and reports an outcome. Code under test runs in this process and could
# replace any of it (patching ``TestReport`` when the tests import it, say); each is held
# here when the plugin loads (before any conftest or test module) and compared by identity
# after every report. Names that a pytest or pluggy version lacks are left out.
GUARDED = (
    "_pytest.reports.TestReport.__init__",
    "_pytest.reports.TestReport.from_item_and_call",
    "_pytest.reports.BaseReport.passed",
    "_pytest.reports.BaseReport.failed",
    "_pytest.reports.BaseReport.skipped",
    "_pytest.runner.call_and_report",
    "_pytest.runner.runtestprotocol",
    "_pytest.runner.call_runtest_hook",
    "_pytest.runner.CallInfo.from_call",
    "_pytest.runner.pytest_runtest_makereport",
    "_pytest.runner.check_interactive_exception",
    "_pytest.python.Function.runtest",
    "_pytest.python.pytest_pyfunc_call",
    "_pytest.skipping.pytest_runtest_makereport",
    "pluggy._hooks.HookCaller.__call__",
    "pluggy._callers._multicall",
    "pluggy._manager.PluginManager._hookexec",
)


def _guarded() -> dict[str, Any]:
    """The objects named in ``GUARDED`` (class attributes as stored, properties included)."""
    import importlib

    found: dict[str, Any] = {}
    for name in GUARDED:
        parts = name.split(".")
        for split in range(len(parts) - 1, 0, -1):
            try:
                owner: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:-1]:
                    owner = getattr(owner, attribute)
                space = vars(owner) if isinstance(owner, type) else None
                last = parts[-1]
                found[name] = space[last] if space is not None else getattr(owner, last)
            except (AttributeError, KeyError, TypeError):
                pass
            break
    return found


_ORIGINAL = _guarded()


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
    _state.update(raised=set(), tampered=set(), collecting=False, deferred=[])
    _state["lazy"] = _state["proceed"] is not None and not config.option.collectonly
    _state["explicit"] = {arg.split("::", 1)[0] for arg in config.args if "::" in arg}
    _state["first_files"] = {selector.split("::", 1)[0] for selector in _state["first"]}
    _state["own"] = {name: globals()[name] for name in OWN}


OWN = ("pytest_runtest_logreport", "pytest_runtest_call", "_outcome", "_write", "_check")


def _check() -> None:
    """Report each guarded object that is no longer the one held when the plugin loaded."""
    now = _guarded()
    changed = [name for name, obj in _ORIGINAL.items() if now.get(name) is not obj]
    changed += [name for name, obj in _state["own"].items() if globals().get(name) is not obj]
    for name in changed:
        _tampered(f"{name} was replaced")


def _tampered(what: str) -> None:
    if what not in _state["tampered"]:
        _state["tampered"].add(what)
        _write({"tampered": what})


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    _state["collecting"] = True


def pytest_plugin_registered(plugin: object, plugin_name: str) -> None:
    """A plugin registered from inside the run (not a conftest: those are graded in their
    base version) can rewrite any report."""
    if _state.get("collecting") and not str(plugin_name).endswith("conftest.py"):
        _tampered(f"a plugin was registered during the run: {plugin_name}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Remember a test whose call raised something other than a skip or an xfail."""
    outcome = yield
    error = outcome.excinfo
    if error is not None and not issubclass(error[0], _NOT_FAILURES):
        _state["raised"].add(item.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport | None:
    """Set aside, unopened, each test file that holds no ``first`` test (see the module's
    docstring); ``_collect_rest`` opens them when the rest is to run."""
    if not _state.get("lazy") or not isinstance(collector, pytest.File):
        return None
    path = collector.nodeid.split("::", 1)[0]
    if path in _state["first_files"] or _explicit(collector):
        return None
    _state["deferred"].append(collector)
    return pytest.CollectReport(collector.nodeid, "passed", None, [])


def _explicit(collector: pytest.Collector) -> bool:
    """Whether the command names something inside this file (``file.py::test``): pytest
    matches those names against the file's items while it collects."""
    return any(collector.path.samefile(arg) for arg in _state["explicit"] if Path(arg).exists())


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
        _state["excluded"] = _state.get("excluded", 0) + len(items) - len(kept)
        items[:] = kept
    if _state.get("proceed") is not None and "first_count" not in _state:
        first = [item for item in items if _matches(item.nodeid, _state["first"])]
        rest = [item for item in items if not _matches(item.nodeid, _state["first"])]
        must = set(_state["proceed"].get("fail_to_pass", ()))
        first.sort(key=lambda item: item.nodeid not in must)  # stable: plan order kept
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
    _check()
    outcomes: dict[str, str] = _state["outcomes"]
    outcome = _outcome(report)
    if report.when == "call" and outcome == PASSED and report.nodeid in _state["raised"]:
        _tampered(f"{report.nodeid} raised but was reported as passed")
        outcome = FAILED
    worst = max(outcomes.get(report.nodeid, PASSED), outcome, key=ORDER.index)
    outcomes[report.nodeid] = worst
    if report.when == "teardown":
        _state["done"][report.nodeid] = outcomes.pop(report.nodeid)
        _write({"test": report.nodeid, "outcome": _state["done"][report.nodeid]})


_NOT_FAILURES: tuple[type[BaseException], ...] = (
    pytest.skip.Exception,
    pytest.xfail.Exception,
    pytest.exit.Exception,
)


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
    _run_first(session, first, proceed)
    if not _clean(proceed):
        _write({"continued": False})
        return True
    _write({"continued": True})
    _run_items(session, rest + _collect_rest(session))
    return True


def _collect_rest(session: pytest.Session) -> list[pytest.Item]:
    """The test files set aside during collection, collected now (see the docstring)."""
    deferred: list[pytest.Collector] = _state["deferred"]
    if not deferred:
        return []
    _state["lazy"] = False
    _state["deselected"] = []
    items = [item for collector in deferred for item in session.genitems(collector)]
    config = session.config
    config.hook.pytest_collection_modifyitems(session=session, config=config, items=items)
    session.items.extend(items)
    session.testscollected += len(items)
    _write(
        {
            "collected": [item.nodeid for item in items],
            "deselected": _state["deselected"],
            "excluded": _state.get("excluded", 0),
        }
    )
    return items


def _run_first(session: pytest.Session, items: list[pytest.Item], proceed: dict[str, Any]) -> None:
    """The affected tests, stopping at the first one that blocks the attempt (see the
    module's docstring)."""
    unrun = _run_items(session, items, stop=lambda item: _blocks(item, proceed))
    if unrun:
        _write({"stopped": [later.nodeid for later in unrun[1:]], "by": unrun[0].nodeid})
        _teardown_all(session)


def _blocks(item: pytest.Item, proceed: dict[str, Any]) -> bool:
    """Whether ``item``'s outcome alone fails the attempt: a fail_to_pass test that did
    not pass, or a regression that failed every proof rerun."""
    outcome: str = _state["done"].get(item.nodeid, PASSED)
    if item.nodeid in proceed.get("fail_to_pass", ()):
        return outcome != PASSED
    if outcome not in (FAILED, ERROR) or item.nodeid in proceed.get("known_failing", ()):
        return False
    from _pytest.runner import runtestprotocol

    for _ in range(int(proceed.get("proof_rounds", 0))):
        reports = runtestprotocol(item, nextitem=None, log=False)  # every fixture torn down
        if not any(report.failed for report in reports):
            return False  # it passed once: intermittent, judged by the reruns
    return True


def _teardown_all(session: pytest.Session) -> None:
    """Tear down the fixtures the last test left set up for the next one."""
    setup_state = getattr(session, "_setupstate", None)
    if setup_state is not None:
        setup_state.teardown_exact(None)


def _run_items(
    session: pytest.Session,
    items: list[pytest.Item],
    stop: Callable[[pytest.Item], bool] | None = None,
) -> list[pytest.Item]:
    """pytest's own run loop over ``items`` (the last one tears every fixture down).

    With ``stop``, the loop ends after a test for which it holds, before the next one;
    returned: that test and the ones left unrun (empty when every test ran).
    """
    for index, item in enumerate(items):
        nextitem = items[index + 1] if index + 1 < len(items) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        if nextitem is not None and stop is not None and stop(item):
            return items[index:]
    return []


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
