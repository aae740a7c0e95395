"""Verifying one attempt: affected tests first, then the rest, against the baseline.

The tests run in the verification tree (``grading.py``): the attempt's code with the base
commit's test files and test configuration. The order serves the Builder: the tests a
change can affect run first, and when they already show a regression the attempt goes
back with that feedback without collecting the rest. Otherwise the rest of the suite
runs in the same pytest process (the affected tests are not run twice, and a landing
attempt pays for one start-up), or, when the affected run left a doubt only the base tree
can settle (a test that failed then passed), in a second process without them. Together
they must account for every test of the baseline. A hang costs one timeout: a run that
timed out decides the attempt.

A base-passing test that fails is a regression unless it was seen to be flaky on the
base tree: a rerun that passes proves nothing about the change, so such a test is rerun
on the base tree, and only a failure there excuses it. New tests (and ``fail_to_pass``)
are rerun even when they pass, and must pass every time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autopack.verify.baseline import BaseCheckout, BaselineCache, baseline_key, get_baseline
from autopack.verify.delta import EXIT_STATUS_ID, TestDelta, compute_delta, outcomes_of
from autopack.verify.grading import GradingReport, grading_tree, is_test_file
from autopack.verify.impact import changed_base_lines, function_spans, select_tests
from autopack.verify.results import PASSED, Rerun, Rest, TestRun, run_tests
from autopack.workspace import git
from autopack.workspace.runner import Sandbox

LISTED_IDS = 50


@dataclass(frozen=True)
class VerifySettings:
    """How an attempt is verified."""

    flaky_reruns: int = 2
    """In-process reruns of a failing test (and of every new test, which must pass them)."""
    base_flaky_reruns: int = 5
    """Reruns on the base tree of a base-passing test that failed then passed: a failure
    there proves it flaky at base, and only that excuses it."""
    impact_selection: bool = True
    """Run the tests affected by the change first, and stop there if they regress."""
    full_suite: bool = True
    """Run the whole suite before an attempt may pass."""
    timeout_s: float = 900.0
    """Timeout of one test command."""
    rerun_timeout_s: float = 120.0
    """Timeout of the rerun on the base tree."""
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
    rest_run: TestRun | None = None
    """The suite without the selected tests (or the whole suite when none were)."""
    full_run: TestRun | None = None
    """The whole suite's outcomes: the selected run and the rest together."""
    grading: GradingReport = field(default_factory=GradingReport)
    rerun_s: float = 0.0
    """Seconds spent rerunning tests on the base tree, to tell flakes from regressions."""
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ran_enough = self.full_run is not None or self.selection.get("full_suite_required") is False
        return ran_enough and not self.delta.blocking

    @property
    def seeds_baseline(self) -> bool:
        """Whether the full run is also the landed tree's baseline: it passed, and it ran
        the attempt's own tree (no test file or configuration was put back)."""
        return self.passed and self.full_run is not None and self.grading.graded_as_is

    def to_dict(self) -> dict[str, Any]:
        runs = {"selected_run": self.selected_run, "rest_run": self.rest_run}
        return {
            "command": self.command,
            "kind": self.kind,
            "base_tree": self.base_tree,
            "passed": self.passed,
            "delta": self.delta.to_dict(),
            "grading": self.grading.to_dict(),
            "baseline": {**_summary(self.baseline), "cached": self.baseline_cached},
            "selection": self.selection,
            **{name: _summary(run) if run else None for name, run in runs.items()},
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
    started = time.monotonic()
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
    base_files = {_file(t) for t in baseline.outcomes}
    with grading_tree(worktree, base_tree, changed_files, base_files) as grading:
        evidence.grading = grading
        graded = _Graded(evidence, worktree, command, fail_to_pass, sandbox, settings)
        graded.run(_new_test_files(changed_files, base_files), changed_files, impact)
    if graded.suspects:
        _judge_suspects(evidence, graded.suspects, sandbox, cache, base_checkout, settings)
    evidence.delta.tests_edited = sorted(grading.tests_edited + grading.tests_deleted)
    evidence.delta.config_changed = list(grading.config_changed)
    return _finish(evidence, time.monotonic() - started)


@dataclass
class _Graded:
    """The grading runs of one attempt, in its verification tree."""

    evidence: VerifyEvidence
    worktree: Path
    command: str
    fail_to_pass: Sequence[str]
    sandbox: Sandbox
    settings: VerifySettings
    suspects: list[str] = field(default_factory=list)
    """Base-passing tests that failed then passed a rerun: flaky at base, or regressions."""

    def run(self, new_files: set[str], changed: Sequence[str], impact: dict[str, Any]) -> None:
        """The affected tests, and when they do not already block, the rest."""
        evidence, settings = self.evidence, self.settings
        baseline = evidence.baseline
        rerun = _rerun_request(baseline, self.fail_to_pass, new_files, settings)
        selected = None
        if settings.impact_selection:
            selected = _selection(
                self.worktree,
                evidence.base_tree,
                baseline,
                impact,
                changed,
                self.fail_to_pass,
                new_files,
                deleted=evidence.grading.tests_deleted,
            )
        if selected:
            known = [t for t, o in baseline.outcomes.items() if o != PASSED]
            rounds = rerun.rounds if rerun is not None else 0
            rest = Rest(known, self.fail_to_pass, rounds) if settings.full_suite else None
            run = self._tests(test_ids=selected, rerun=rerun, rest=rest)
            evidence.selected_run = run
            evidence.selection = _selection_info(impact, selected, baseline, settings, run)
            if run.continued:  # the rest of the suite ran in the same process
                evidence.full_run = run
                self._judge(run, only=None)
                return
            self._judge(run, only=selected)
            # A suspect may yet prove flaky at base: that check waits for the rest.
            pending = set(self.suspects)
            failing = [t for t in evidence.delta.newly_failing if t not in pending]
            if replace(evidence.delta, newly_failing=failing).blocking or not settings.full_suite:
                return
        graded = selected or []
        if evidence.selected_run is not None and evidence.selected_run.not_run:
            graded = list(evidence.selected_run.outcomes)  # a flake stopped them: run the rest
        remainder = self._tests(exclude=graded, rerun=rerun)
        evidence.rest_run = remainder
        evidence.full_run = _merged(evidence.selected_run, remainder)
        self._judge(evidence.full_run, only=None)

    def _tests(self, **options: Any) -> TestRun:
        return run_tests(
            self.sandbox,
            self.worktree,
            self.command,
            timeout_s=self.settings.timeout_s,
            env=self.settings.env,
            **options,
        )

    def _judge(self, run: TestRun, only: Sequence[str] | None) -> None:
        grading = self.evidence.grading
        delta = compute_delta(
            self.evidence.baseline,
            run,
            self.fail_to_pass,
            only=None if only is None else set(only),
            deleted_files=grading.tests_deleted,
            edited_files=grading.tests_edited,
        )
        if only is not None:
            delta.new_tests = [t for t in delta.new_tests if _in_scope(t, only)]
        if run.not_run and only is not None:  # unrun, not missing: the attempt had failed
            unrun = set(run.not_run)
            delta.not_run = sorted(unrun)
            delta.missing = [t for t in delta.missing if t not in unrun]
        delta.unstable = _unstable(run, delta.new_tests, self.fail_to_pass)
        self.evidence.delta = delta
        if delta.fail_to_pass_failing or delta.collection_errors or delta.run_errors:
            # No rerun can unblock this attempt; the Builder should not wait for one.
            delta.not_rerun = [t for t in delta.newly_failing if t != EXIT_STATUS_ID]
            return
        rounds = {t: run.reruns.get(t, []) for t in delta.newly_failing}
        proven = {t for t, seen in rounds.items() if seen and PASSED not in seen}
        if proven:
            # One regression blocks the attempt: telling the rest apart would not change that.
            delta.not_rerun = [t for t in delta.newly_failing if t not in proven]
            return
        new = set(delta.new_tests)
        self.suspects = [t for t, seen in rounds.items() if PASSED in seen and t not in new]
        delta.not_rerun = [t for t, seen in rounds.items() if not seen]


def _file(test: str) -> str:
    return test.split("::", 1)[0]


def _unstable(run: TestRun, new_tests: Sequence[str], fail_to_pass: Sequence[str]) -> list[str]:
    """New and fail_to_pass tests that passed, then failed a rerun."""
    outcomes = outcomes_of(run)
    watched = set(new_tests) | set(fail_to_pass)
    return sorted(
        t
        for t in watched
        if outcomes.get(t) == PASSED and any(o != PASSED for o in run.reruns.get(t, []))
    )


def _merged(selected: TestRun | None, rest: TestRun) -> TestRun:
    """The selected run and the rest as one run of the whole suite."""
    if selected is None:
        return rest
    return TestRun(
        command=rest.command,
        kind=rest.kind,
        exit_code=rest.exit_code if selected.exit_code == 0 else selected.exit_code,
        outcomes={**selected.outcomes, **rest.outcomes},
        collection_errors=sorted({*selected.collection_errors, *rest.collection_errors}),
        collected=selected.collected + rest.collected,
        deselected=sorted({*selected.deselected, *rest.deselected}),
        finished=selected.finished and rest.finished,
        running=rest.running,
        environment=rest.environment,
        duration_s=selected.duration_s + rest.duration_s,
        output_tail=rest.output_tail,
        sandbox=rest.sandbox,
        timed_out=rest.timed_out,
        warning=rest.warning,
        reruns={**selected.reruns, **rest.reruns},
        tampered=sorted({*selected.tampered, *rest.tampered}),
    )


def _judge_suspects(
    evidence: VerifyEvidence,
    suspects: list[str],
    sandbox: Sandbox,
    cache: BaselineCache,
    base_checkout: BaseCheckout,
    settings: VerifySettings,
) -> None:
    """Excuse the suspects seen flaky on the base tree (recorded, or rerun there now)."""
    key = f"{baseline_key(evidence.base_tree, evidence.command)}:flaky"
    known = set((cache.get(key) or {}).get("flaky", []))
    unknown = [t for t in suspects if t not in known]
    if unknown:
        with base_checkout() as base:
            run = run_tests(
                sandbox,
                base,
                evidence.command,
                test_ids=unknown,
                timeout_s=settings.rerun_timeout_s,
                env=settings.env,
                rerun=Rerun(settings.base_flaky_reruns, repeat=unknown),
            )
        evidence.rerun_s += run.duration_s
        seen = {t: {run.outcomes.get(t), *run.reruns.get(t, [])} for t in unknown}
        flaky_now = {t for t, outcomes in seen.items() if PASSED in outcomes and len(outcomes) > 1}
        if flaky_now:
            cache.put(key, {"flaky": sorted(known | flaky_now)})
        known |= flaky_now
    delta = evidence.delta
    delta.flaky = sorted(t for t in suspects if t in known)
    delta.intermittent = sorted(t for t in suspects if t not in known)
    delta.newly_failing = [t for t in delta.newly_failing if t not in known]


def _rerun_request(
    baseline: TestRun, fail_to_pass: Sequence[str], new_files: set[str], settings: VerifySettings
) -> Rerun | None:
    """In-process reruns of failing tests, and of new ones, for pytest runs."""
    if baseline.kind != "pytest" or settings.flaky_reruns < 1:
        return None
    known = sorted(t for t, o in baseline.outcomes.items() if o != PASSED)
    return Rerun(
        settings.flaky_reruns,
        known_failing=known,
        fail_to_pass=list(fail_to_pass),
        repeat=sorted(new_files | set(fail_to_pass)),
    )


def _finish(evidence: VerifyEvidence, wall_s: float) -> VerifyEvidence:
    runs = [evidence.baseline, evidence.selected_run, evidence.rest_run]
    evidence.warnings = sorted({r.warning for r in runs if r is not None and r.warning})
    # Reruns count: the Builder waits for them before it hears about the attempt.
    spent = sum(r.duration_s for r in runs[1:] if r is not None) + evidence.rerun_s
    evidence.selection["rerun_time_s"] = round(evidence.rerun_s, 3)
    evidence.selection["test_time_s"] = round(spent, 3)
    evidence.selection["time_saved_s"] = round(max(0.0, evidence.baseline.duration_s - spent), 3)
    evidence.selection["wall_s"] = round(wall_s, 3)
    return evidence


def _selection(
    worktree: Path,
    base_tree: str,
    baseline: TestRun,
    impact: dict[str, Any],
    changed_files: Sequence[str],
    fail_to_pass: Sequence[str],
    new_files: set[str],
    *,
    deleted: Sequence[str],
) -> list[str] | None:
    """Affected test IDs, ``fail_to_pass`` and new test files; ``None`` when selection
    cannot narrow. Tests of deleted test files are not selected: there is nothing to run."""
    all_tests = sorted(t for t in baseline.outcomes if _file(t) not in deleted)
    if baseline.kind != "pytest" or not impact or not all_tests:
        return None
    sources = {path: _base_source(worktree, base_tree, path) for path in changed_files}
    changed = {path: _changed_lines(worktree / path, base) for path, base in sources.items()}
    functions = {path: function_spans(base) for path, base in sources.items() if base}
    known = set(all_tests)
    chosen = set(select_tests(impact, changed, all_tests, functions))
    chosen |= known.intersection(fail_to_pass)
    # Whole files for new tests: a node ID pytest cannot find aborts the run.
    unknown = {_file(t) for t in fail_to_pass if t not in known}
    whole = {f for f in unknown | new_files if (worktree / f).is_file()}
    targets = _compress(chosen, whole, all_tests)
    if len([t for t in all_tests if t in chosen or _file(t) in whole]) >= len(all_tests):
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


def _new_test_files(changed_files: Sequence[str], base_files: set[str]) -> set[str]:
    """Test modules the attempt added (the baseline never ran them): they run whole."""
    return {
        path
        for path in changed_files
        if path not in base_files and is_test_file(path) and path.endswith(".py")
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
