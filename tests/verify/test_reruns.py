"""Flaky reruns: regressions are settled in the pytest process that found them."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autopack.verify import MemoryBaselineCache, VerifyEvidence, VerifySettings, verify_attempt
from autopack.verify.baseline import get_baseline
from autopack.workspace.runner import CommandResult, Sandbox, make_sandbox

FAST = VerifySettings(env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})

WARMS_UP = """\
_calls = []


def add(a, b):
    _calls.append(1)
    if len(_calls) == 1:  # wrong on the first call in a process only
        return 0
    return a + b
"""


class CountingSandbox:
    """The real sandbox, counting the commands an attempt waits for."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.name = inner.name
        self.commands: list[str] = []

    def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 600,
        env: Mapping[str, str] | None = None,
        output_cap: int = 200_000,
        writable: Sequence[Path] = (),
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        self.commands.append(command)
        return self.inner.run(
            command,
            cwd,
            timeout_s=timeout_s,
            env=env,
            output_cap=output_cap,
            writable=writable,
            cancel=cancel,
        )


def attempt(project: Any, changed: list[str], sandbox: Sandbox) -> VerifyEvidence:
    repo, tree, checkout = project
    return verify_attempt(
        repo,
        base_tree=tree,
        command="python -m pytest",
        fail_to_pass=(),
        changed_files=changed,
        sandbox=sandbox,
        cache=cached_baseline(project),
        base_checkout=checkout,
        settings=FAST,
    )


def cached_baseline(project: Any) -> MemoryBaselineCache:
    """A cache holding the base tree's run, so only the attempt's own commands count."""
    cache = MemoryBaselineCache()
    get_baseline(
        base_tree=project.tree,
        command="python -m pytest",
        base_checkout=project.checkout,
        sandbox=make_sandbox(),
        cache=cache,
        timeout_s=FAST.timeout_s,
        env=FAST.env,
    )
    return cache


def test_a_regression_costs_one_test_command_reruns_included(project: Any) -> None:
    path = project.repo / "geo.py"
    path.write_text(path.read_text().replace("return w * h", "return w + h"))
    sandbox = CountingSandbox(make_sandbox())
    evidence = attempt(project, ["geo.py"], sandbox)
    assert not evidence.passed
    assert evidence.delta.newly_failing == ["tests/test_geo.py::test_area"]
    assert evidence.delta.flaky == []
    assert len(sandbox.commands) == 1, sandbox.commands
    run = evidence.to_dict()["selected_run"]
    assert run["reruns"] == {"tests/test_geo.py::test_area": ["failed", "failed"]}


def test_once_one_regression_is_proven_the_other_affected_tests_do_not_run(project: Any) -> None:
    for rel, old, new in [("geo.py", "w * h", "w + h"), ("calc.py", "a + b", "a * b")]:
        path = project.repo / rel
        path.write_text(path.read_text().replace(old, new))
    sandbox = CountingSandbox(make_sandbox())
    evidence = attempt(project, ["calc.py", "geo.py"], sandbox)
    broken = ["tests/test_calc.py::test_add", "tests/test_geo.py::test_area"]
    assert evidence.delta.newly_failing == broken[:1]
    assert broken[1] in evidence.delta.not_run  # with the rest of the affected tests
    assert evidence.delta.not_rerun == [] and evidence.delta.missing == []
    assert len(sandbox.commands) == 1, sandbox.commands


def test_a_test_passing_its_rerun_is_checked_on_the_base_tree(project: Any) -> None:
    (project.repo / "flaky_trigger").write_text("fail once")
    sandbox = CountingSandbox(make_sandbox())
    evidence = attempt(project, ["flaky_trigger"], sandbox)
    assert evidence.delta.intermittent == ["tests/test_geo.py::test_flaky_once"]
    assert not evidence.passed
    # the suite (it found the failure and reran it), then one run on the base tree
    assert len(sandbox.commands) == 2, sandbox.commands


def test_a_test_that_passes_only_once_warmed_up_is_not_called_flaky(project: Any) -> None:
    path = project.repo / "calc.py"
    path.write_text(path.read_text().replace("def add(a, b):\n    return a + b\n", WARMS_UP))
    evidence = attempt(project, ["calc.py"], make_sandbox())
    assert evidence.delta.newly_failing == ["tests/test_calc.py::test_add"]
    assert evidence.delta.flaky == []
    assert not evidence.passed
