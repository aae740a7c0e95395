"""The delta between the baseline and an attempt, in SWE-bench's terms.

PASS_TO_PASS tests must stay passing, the phase's FAIL_TO_PASS tests must pass (a
skipped or missing one counts as failing), and a failure the base tree already had
never blocks a phase.
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
    removed_tests: list[str] = field(default_factory=list)
    fail_to_pass_failing: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    not_rerun: list[str] = field(default_factory=list)
    """Newly failing tests not rerun for flakiness: the attempt was blocked anyway."""
    collection_errors: list[str] = field(default_factory=list)
    run_errors: list[str] = field(default_factory=list)
    hidden_failing: list[str] = field(default_factory=list)
    """Hidden acceptance tests (``tests.hidden``) that did not pass, by name only."""

    @property
    def blocking(self) -> bool:
        """Whether anything here stops the attempt from passing."""
        return bool(
            self.newly_failing
            or self.fail_to_pass_failing
            or self.collection_errors
            or self.run_errors
            or self.hidden_failing
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
) -> TestDelta:
    """Compare two runs; ``only`` (test IDs or files) limits it to what a partial run ran."""
    before, after = outcomes_of(baseline), outcomes_of(current)
    if only is not None:
        before = {t: o for t, o in before.items() if t in only or t.split("::", 1)[0] in only}
    delta = TestDelta()
    for test, outcome in sorted(after.items()):
        ok = outcome == PASSED
        if test not in before:
            delta.new_tests.append(test)
            if not ok and test not in fail_to_pass:
                delta.newly_failing.append(test)
        elif before[test] == PASSED and not ok:
            delta.newly_failing.append(test)
        elif before[test] != PASSED and ok:
            delta.fixed.append(test)
        elif before[test] != PASSED:
            delta.still_failing.append(test)
    delta.removed_tests = sorted(set(before) - set(after))
    delta.fail_to_pass_failing = [t for t in fail_to_pass if after.get(t) != PASSED]
    known_errors = set(baseline.collection_errors)
    delta.collection_errors = [e for e in current.collection_errors if e not in known_errors]
    if current.timed_out:
        delta.run_errors.append(f"test command timed out: {current.warning}")
    return delta
