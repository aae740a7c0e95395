"""Baselines: the base tree's test results, run once per (tree hash, command) and cached.

Only a sane baseline is cached (see :mod:`autopack.verify.sanity`): one that is no
evidence stops the run instead.

The cache is a protocol so the store can keep baselines in the database; a JSON-file
cache and an in-memory one live here for tools and tests.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from autopack.verify.impact import coverage_available, coverage_map, import_graph_map
from autopack.verify.results import TestRun, is_pytest, run_tests
from autopack.verify.sanity import BaselineUnusable, baseline_problem
from autopack.workspace.runner import Sandbox

BaseCheckout = Callable[[], AbstractContextManager[Path]]


class BaselineCache(Protocol):
    """Stores a baseline (``TestRun.to_dict()`` plus ``impact``) under its key."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class MemoryBaselineCache:
    """A dict; for tests and one-process tools."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.entries[key] = value


class JsonDirBaselineCache:
    """One JSON file per key in a directory (e.g. ``.autopack/baselines``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(self._path(key))


def baseline_key(base_tree: str, command: str) -> str:
    # "report": outcomes from Autopack's pytest plugin (older entries were rebuilt from
    # JUnit XML, under other IDs for inherited tests); they must not be reused.
    return f"{base_tree}:report:{hashlib.sha256(command.encode()).hexdigest()[:16]}"


def get_baseline(
    *,
    base_tree: str,
    command: str,
    base_checkout: BaseCheckout,
    sandbox: Sandbox,
    cache: BaselineCache,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    fail_to_pass: Collection[str] = (),
) -> tuple[TestRun, dict[str, Any], bool]:
    """The base tree's run and impact map, and whether they came from the cache.

    Raises :class:`BaselineUnusable` when the run is no evidence (nothing collected,
    collection errors, a crash): such a run is never cached, and neither is one cut
    short by a timeout. A cached entry this function did not judge (one an older version
    cached, say) is judged now, and run afresh rather than trusted when it fails.
    """
    key = baseline_key(base_tree, command)
    cached = cache.get(key)
    if cached is not None:
        run = TestRun.from_dict(cached)
        if cached.get("judged") or baseline_problem(run, fail_to_pass) is None:
            return run, cached.get("impact", {}), True
    with base_checkout() as base:
        run, impact = measure_baseline(sandbox, base, command, timeout_s=timeout_s, env=env)
    problem = baseline_problem(run, fail_to_pass)
    if problem is not None:
        raise BaselineUnusable(problem, run)
    cache.put(key, {**run.to_dict(), "impact": impact, "judged": True})
    return run, impact, False


def measure_baseline(
    sandbox: Sandbox,
    checkout: Path,
    command: str,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> tuple[TestRun, dict[str, Any]]:
    """Run ``command`` on a checkout of the base as a baseline runs it (per-test coverage
    when it can), uncached and unjudged: ``autopack doctor`` runs exactly this."""
    with tempfile.TemporaryDirectory(prefix="autopack-cov-") as scratch:
        use_coverage = is_pytest(command) and coverage_available()
        data_file = Path(scratch) / "coverage" if use_coverage else None
        run = run_tests(
            sandbox, checkout, command, timeout_s=timeout_s, env=env, coverage_file=data_file
        )
        if data_file is not None and data_file.exists():
            # The import graph covers what coverage cannot: files no test executed.
            impact = {**coverage_map(data_file, checkout), "imports": import_graph_map(checkout)}
        else:
            impact = import_graph_map(checkout)
    return run, impact
