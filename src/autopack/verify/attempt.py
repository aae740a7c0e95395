"""Verifying one attempt: affected tests first, then the full suite, against the baseline.

The order serves the Builder: the tests a change can affect run first, and when they
already show a regression the attempt goes back with that feedback without waiting
for the full suite. An attempt can only pass after the full suite ran (unless the
settings say otherwise), newly failing tests were rerun in isolation to tell flakes
from regressions, and the result was compared with the cached baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopack.verify.baseline import BaseCheckout, BaselineCache, get_baseline
from autopack.verify.delta import EXIT_STATUS_ID, TestDelta, compute_delta, outcomes_of
from autopack.verify.impact import changed_base_lines, function_spans, select_tests
from autopack.verify.results import PASSED, Rerun, TestRun, run_tests
from autopack.workspace import git
from autopack.workspace.runner import Sandbox

LISTED_IDS = 50


@dataclass(frozen=True)
class VerifySettings:
    """How an attempt is verified."""

    flaky_reruns: int = 2
    """Reruns of a newly failing test; passing one (then again in a fresh process) is a flake."""
    impact_selection: bool = True
    """Run the tests affected by the change first, and stop there if they regress."""
    full_suite: bool = True
    """Run the whole suite before an attempt may pass."""
    timeout_s: float = 900.0
    """Timeout of one test command."""
    rerun_timeout_s: float = 120.0
    """Timeout of one isolated rerun."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for test commands (over the sandbox's scrubbed one)."""


@dataclass
class VerifyEvidence:
    """Everything verification found out about one attempt."""

    command: str
    kind: str
    base_tree: str
    delta: TestDelta
    baseline: TestRun
    baseline_cached: bool
    selection: dict[str, Any]
    selected_run: TestRun | None = None
    full_run: TestRun | None = None
    rerun_s: float = 0.0
    """Seconds spent rerunning newly failing tests apart, to tell flakes from regressions."""
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ran_enough = self.full_run is not None or self.selection.get("full_suite_required") is False
        return ran_enough and not self.delta.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "kind": self.kind,
            "base_tree": self.base_tree,
            "passed": self.passed,
            "delta": self.delta.to_dict(),
            "baseline": {**_summary(self.baseline), "cached": self.baseline_cached},
            "selection": self.selection,
            "selected_run": _summary(self.selected_run) if self.selected_run else None,
            "full_run": _summary(self.full_run) if self.full_run else None,
            "warnings": self.warnings,
        }


def _summary(run: TestRun) -> dict[str, Any]:
    """A run without its per-test outcomes (the delta names the ones that matter)."""
    counts: dict[str, int] = {}
    for outcome in outcomes_of(run).values():
        counts[outcome] = counts.get(outcome, 0) + 1
    data = run.to_dict()
    del data["outcomes"]
    return {**data, "counts": counts}


def verify_attempt(
    worktree: Path,
    *,
    base_tree: str,
    command: str,
    fail_to_pass: Sequence[str],
    changed_files: Sequence[str],
    sandbox: Sandbox,
    cache: BaselineCache,
    base_checkout: BaseCheckout,
    settings: VerifySettings = VerifySettings(),
) -> VerifyEvidence:
    """Verify the attempt in ``worktree`` against the baseline of ``base_tree``."""
    baseline, impact, cached = get_baseline(
        base_tree=base_tree,
        command=command,
        base_checkout=base_checkout,
        sandbox=sandbox,
        cache=cache,
        timeout_s=settings.timeout_s,
        env=settings.env,
        fail_to_pass=fail_to_pass,
    )
    evidence = VerifyEvidence(
        command=command,
        kind=baseline.kind,
        base_tree=base_tree,
        delta=TestDelta(),
        baseline=baseline,
        baseline_cached=cached,
        selection={"strategy": "none", "full_suite_required": settings.full_suite},
    )
    selected = None
    if settings.impact_selection:
        selected = _selection(worktree, base_tree, baseline, impact, changed_files, fail_to_pass)
    rerun = _rerun_request(baseline, fail_to_pass, settings)
    if selected:
        run = run_tests(
            sandbox,
            worktree,
            command,
            test_ids=selected,
            timeout_s=settings.timeout_s,
            env=settings.env,
            rerun=rerun,
        )
        # No outcomes means the selection itself failed (a selected test was removed, say).
        evidence.selected_run = run if run.outcomes else None
    if selected and evidence.selected_run is not None:
        run = evidence.selected_run
        evidence.delta, rerun_s = _delta(
            baseline, run, fail_to_pass, selected, sandbox, worktree, settings
        )
        evidence.rerun_s += rerun_s
        evidence.selection = _selection_info(impact, selected, baseline, settings, run)
        if evidence.delta.blocking or not settings.full_suite:
            return _finish(evidence)
    if settings.full_suite or evidence.selected_run is None:
        run = run_tests(
            sandbox, worktree, command, timeout_s=settings.timeout_s, env=settings.env, rerun=rerun
        )
        evidence.full_run = run
        evidence.delta, rerun_s = _delta(
            baseline, run, fail_to_pass, None, sandbox, worktree, settings
        )
        evidence.rerun_s += rerun_s
    return _finish(evidence)


def _rerun_request(
    baseline: TestRun, fail_to_pass: Sequence[str], settings: VerifySettings
) -> Rerun | None:
    """In-process reruns of failing tests, for pytest runs with per-test outcomes."""
    if baseline.kind != "junit" or settings.flaky_reruns < 1:
        return None
    known = sorted(t for t, o in baseline.outcomes.items() if o != PASSED)
    return Rerun(settings.flaky_reruns, known_failing=known, fail_to_pass=list(fail_to_pass))


def _finish(evidence: VerifyEvidence) -> VerifyEvidence:
    runs = [evidence.baseline, evidence.selected_run, evidence.full_run]
    evidence.warnings = sorted({r.warning for r in runs if r is not None and r.warning})
    # Reruns count: the Builder waits for them before it hears about the attempt.
    spent = sum(r.duration_s for r in runs[1:] if r is not None) + evidence.rerun_s
    evidence.selection["rerun_time_s"] = round(evidence.rerun_s, 3)
    evidence.selection["test_time_s"] = round(spent, 3)
    evidence.selection["time_saved_s"] = round(max(0.0, evidence.baseline.duration_s - spent), 3)
    return evidence


def _selection(
    worktree: Path,
    base_tree: str,
    baseline: TestRun,
    impact: dict[str, Any],
    changed_files: Sequence[str],
    fail_to_pass: Sequence[str],
) -> list[str] | None:
    """Affected test IDs plus ``fail_to_pass``; ``None`` when selection cannot narrow."""
    all_tests = sorted(baseline.outcomes)
    if baseline.kind != "junit" or not impact or not all_tests:
        return None
    sources = {path: _base_source(worktree, base_tree, path) for path in changed_files}
    changed = {path: _changed_lines(worktree / path, base) for path, base in sources.items()}
    functions = {path: function_spans(base) for path, base in sources.items() if base}
    known = set(all_tests)
    chosen = set(select_tests(impact, changed, all_tests, functions))
    chosen |= known.intersection(fail_to_pass)
    # Whole files for new tests: a node ID pytest cannot find aborts the run.
    unknown = {t.split("::", 1)[0] for t in fail_to_pass if t not in known}
    whole = unknown | _new_test_files(worktree, changed_files, all_tests)
    whole = {f for f in whole if (worktree / f).is_file()}
    targets = _compress(chosen, whole, all_tests)
    if len([t for t in all_tests if t in chosen or t.split("::", 1)[0] in whole]) >= len(all_tests):
        return None
    return targets


def _compress(chosen: set[str], whole: set[str], all_tests: list[str]) -> list[str]:
    """Pytest arguments: a file when all its tests are chosen, else the chosen node IDs."""
    by_file: dict[str, list[str]] = {}
    for test in all_tests:
        by_file.setdefault(test.split("::", 1)[0], []).append(test)
    files = set(whole)
    for path, tests in by_file.items():
        if all(t in chosen for t in tests):
            files.add(path)
    ids = {t for t in chosen if t.split("::", 1)[0] not in files}
    return sorted(files) + sorted(ids)


def _new_test_files(worktree: Path, changed_files: Sequence[str], known: list[str]) -> set[str]:
    """Changed test files the baseline never ran (new tests): run them whole."""
    known_files = {t.split("::", 1)[0] for t in known}
    return {
        path
        for path in changed_files
        if path.rsplit("/", 1)[-1].startswith("test_")
        and path not in known_files
        and (worktree / path).is_file()
    }


def _base_source(worktree: Path, base_tree: str, path: str) -> str | None:
    """A file's text in the base tree; ``None`` when the base has no such file."""
    shown = git.read_blob(worktree, f"{base_tree}:{path}")
    return None if shown is None else shown.decode("utf-8", errors="replace")


def _changed_lines(target: Path, base: str | None) -> set[int] | None:
    """Changed base lines of one file; ``None`` (the whole file) when new or deleted."""
    if base is None or not target.is_file():
        return None
    return changed_base_lines(base, target.read_text(errors="replace"))


def _selection_info(
    impact: dict[str, Any],
    selected: list[str],
    baseline: TestRun,
    settings: VerifySettings,
    run: TestRun,
) -> dict[str, Any]:
    return {
        "strategy": impact.get("strategy", "none"),
        "selected": selected[:LISTED_IDS],
        "selected_count": sum(1 for t in baseline.outcomes if _in_scope(t, selected)),
        "total_count": len(baseline.outcomes),
        "selected_duration_s": run.duration_s,
        "full_suite_estimate_s": baseline.duration_s,
        "full_suite_required": settings.full_suite,
    }


def _in_scope(test: str, targets: Sequence[str]) -> bool:
    return test in targets or test.split("::", 1)[0] in targets


def _delta(
    baseline: TestRun,
    run: TestRun,
    fail_to_pass: Sequence[str],
    only: Sequence[str] | None,
    sandbox: Sandbox,
    worktree: Path,
    settings: VerifySettings,
) -> tuple[TestDelta, float]:
    """The delta of ``run``, with flakes told apart by reruns; and the reruns' seconds."""
    delta = compute_delta(baseline, run, fail_to_pass, only=None if only is None else set(only))
    if only is not None:
        delta.new_tests = [t for t in delta.new_tests if t in baseline.outcomes or t in only]
    if delta.fail_to_pass_failing or delta.collection_errors or delta.run_errors:
        # No rerun can unblock this attempt; the Builder should not wait for one.
        delta.not_rerun = [t for t in delta.newly_failing if t != EXIT_STATUS_ID]
        return delta, 0.0
    regressions = _failing_every_rerun(run).intersection(delta.newly_failing)
    if regressions:
        # One regression blocks the attempt: telling the rest apart would not change that.
        delta.not_rerun = [t for t in delta.newly_failing if t not in regressions]
        return delta, 0.0
    flaky, seconds = _passing_on_rerun(delta.newly_failing, run, sandbox, worktree, settings)
    delta.flaky = flaky
    delta.newly_failing = [t for t in delta.newly_failing if t not in flaky]
    return delta, seconds


def _failing_every_rerun(run: TestRun) -> set[str]:
    """Tests the in-process reruns proved regressions: they failed every round.

    One that passed an in-process rerun may be a flake, or may pass only because the
    first run warmed some state (a cache, an import): it is a flake only if it passes
    again in a fresh process, like a test the plugin did not rerun.
    """
    return {t for t, rounds in run.reruns.items() if rounds and PASSED not in rounds}


def _passing_on_rerun(
    tests: list[str], run: TestRun, sandbox: Sandbox, worktree: Path, settings: VerifySettings
) -> tuple[list[str], float]:
    """The newly failing tests that pass when rerun apart from the rest of the suite.

    They rerun together, one command per round, so a change that breaks many tests
    costs ``flaky_reruns`` commands rather than that many per test.
    """
    if not tests:
        return [], 0.0
    passed: set[str] = set()
    seconds = 0.0
    for _ in range(settings.flaky_reruns):
        pending = [t for t in tests if t not in passed and t != EXIT_STATUS_ID]
        rerun = run_tests(
            sandbox,
            worktree,
            run.command,
            test_ids=pending,
            timeout_s=settings.rerun_timeout_s,
            env=settings.env,
        )
        seconds += rerun.duration_s
        passed |= {t for t, o in outcomes_of(rerun).items() if o == PASSED and t in tests}
        if passed == set(tests):
            break
    return sorted(passed), seconds
