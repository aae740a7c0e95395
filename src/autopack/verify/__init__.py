"""Verification: tests against a cached baseline, the delta by test ID, and checks."""

from autopack.verify.attempt import VerifyEvidence, VerifySettings, verify_attempt
from autopack.verify.baseline import (
    BaselineCache,
    JsonDirBaselineCache,
    MemoryBaselineCache,
    baseline_key,
    get_baseline,
    measure_baseline,
)
from autopack.verify.checks import CheckResult, run_checks
from autopack.verify.delta import TestDelta, compute_delta
from autopack.verify.results import TestRun, detect_test_command, read_report, run_tests
from autopack.verify.sanity import BaselineProblem, BaselineUnusable, baseline_problem

__all__ = [
    "BaselineCache",
    "BaselineProblem",
    "BaselineUnusable",
    "CheckResult",
    "JsonDirBaselineCache",
    "MemoryBaselineCache",
    "TestDelta",
    "TestRun",
    "VerifyEvidence",
    "VerifySettings",
    "baseline_key",
    "baseline_problem",
    "compute_delta",
    "detect_test_command",
    "get_baseline",
    "measure_baseline",
    "read_report",
    "run_checks",
    "run_tests",
    "verify_attempt",
]
