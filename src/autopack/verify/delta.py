"""The delta between the baseline and an attempt, in SWE-bench's terms.

PASS_TO_PASS tests must stay passing, the phase's FAIL_TO_PASS tests must pass (a
skipped or missing one counts as failing), and a failure the base tree already had
never blocks a phase. Every test of the baseline is accounted for: one the attempt did
not run (not collected, deselected, dropped by a hook) is missing, and blocks; only the
tests of a test file the attempt deleted are let go, as deleted (a person approves that).
A pytest run that ran no test, or did not finish its session, did not complete.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autopack.verify.results import PASSED, TestRun

EXIT_STATUS_ID = "<exit status>"
"""The single pseudo-test of a command whose only result is its exit status."""


def outcomes_of(run: TestRun) -> dict[str, str]:
    """Per-test outcomes; a command without per-test results is one pseudo-test."""
    if run.kind == "exit_status":
        return {EXIT_STATUS_ID: PASSED if run.exit_code == 0 else "failed"}
    return dict(run.outcomes)


@dataclass
class TestDelta:
    """What changed between the baseline and the attempt, by test ID."""

    __test__ = False

    newly_failing: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    new_tests: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Baseline tests the attempt did not run: each counts as failing."""
    deleted: list[str] = field(default_factory=list)
    """Baseline tests in test files the attempt deleted (``GradingReport.tests_deleted``)."""
    fail_to_pass_failing: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    """Newly failing tests excused: they were seen to be flaky on the base tree."""
    intermittent: list[str] = field(default_factory=list)
    """Base-stable tests that failed, then passed a rerun: regressions all the same."""
    unstable: list[str] = field(default_factory=list)
    """New (or fail_to_pass) tests that did not pass every rerun: not yet a test to trust."""
    edited_failing: list[str] = field(default_factory=list)
    """Baseline tests in test files the attempt edited that fail in their base version."""
    not_rerun: list[str] = field(default_factory=list)
    """Newly failing tests not rerun for flakiness: the attempt was blocked anyway."""
    not_run: list[str] = field(default_factory=list)
    """Affected tests not run: a test before them had already failed the attempt."""
    collection_errors: list[str] = field(default_factory=list)
    run_errors: list[str] = field(default_factory=list)
    tests_edited: list[str] = field(default_factory=list)
    """Existing test files the attempt changed or deleted (graded in their base version)."""
    config_changed: list[str] = field(default_factory=list)
    """Test configuration the attempt changed, added or shadowed (not used for grading)."""
    hidden_failing: list[str] = field(default_factory=list)
    """Hidden acceptance tests (``tests.hidden``) that did not pass, by name only."""
    runner_tampered: list[str] = field(default_factory=list)
    """What the code under test changed in pytest itself that the base did not."""

    @property
    def blocking(self) -> bool:
        """Whether anything here stops the attempt from passing (on its own evidence:
        edited tests and configuration are a person's call, not a test result)."""
        return bool(
            self.newly_failing
            or self.missing
            or self.unstable
            or self.fail_to_pass_failing
            or self.collection_errors
            or self.run_errors
            or self.hidden_failing
            or self.runner_tampered
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestDelta:
        return cls(**{k: list(v) for k, v in data.items() if k in cls.__dataclass_fields__})


def compute_delta(
    baseline: TestRun,
    current: TestRun,
    fail_to_pass: Sequence[str],
    *,
    only: Collection[str] | None = None,
    deleted_files: Collection[str] = (),
    edited_files: Collection[str] = (),
) -> TestDelta:
    """Compare two runs; ``only`` (test IDs or files) limits it to what a partial run ran.

    ``deleted_files`` and ``edited_files`` are the baseline's test files the attempt
    deleted or edited: tests of the first are deleted rather than missing; a test of the
    second failing in its base version is ``edited_failing`` rather than newly failing.
    """
    before, after = outcomes_of(baseline), outcomes_of(current)
    if only is not None:
        before = {t: o for t, o in before.items() if t in only or _file(t) in only}
    delta = TestDelta()
    for test, outcome in sorted(after.items()):
        ok = outcome == PASSED
        if test not in before:
            delta.new_tests.append(test)
            if not ok and test not in fail_to_pass:
                delta.newly_failing.append(test)
        elif before[test] == PASSED and not ok:
            edited = _file(test) in edited_files and test not in fail_to_pass
            (delta.edited_failing if edited else delta.newly_failing).append(test)
        elif before[test] != PASSED and ok:
            delta.fixed.append(test)
        elif before[test] != PASSED:
            delta.still_failing.append(test)
    for test in sorted(set(before) - set(after)):
        (delta.deleted if _file(test) in deleted_files else delta.missing).append(test)
    delta.fail_to_pass_failing = [t for t in fail_to_pass if after.get(t) != PASSED]
    known_errors = set(baseline.collection_errors)
    delta.collection_errors = [e for e in current.collection_errors if e not in known_errors]
    delta.run_errors = run_errors(current)
    delta.runner_tampered = [t for t in current.tampered if t not in baseline.tampered]
    return delta


def run_errors(run: TestRun) -> list[str]:
    """Why a run cannot count as a complete test run, if it cannot."""
    if run.timed_out:
        hung = f" (in {run.running})" if run.running else ""
        return [f"test command timed out after {run.duration_s:.0f} s{hung}: {run.warning}"]
    if run.kind != "pytest":
        return []
    if not run.finished:
        return [f"pytest did not finish its session (exit status {run.exit_code})"]
    if not run.outcomes and not run.collection_errors:
        return [f"no test ran (exit status {run.exit_code}, {run.collected} collected)"]
    return []


def _file(test: str) -> str:
    return test.split("::", 1)[0]
