"""Whether a baseline is evidence at all, and what to do when it is not.

Every attempt is judged against the base tree's test run. A baseline that collected
nothing, failed to collect, crashed inside pytest or could not load its plugins says
nothing about the base: compared with it, any attempt passes (nothing was passing to
break), or a failure the base already had is blamed on the Builder forever. Such a
baseline stops the run before the Builder spends anything and is never cached; the
message names the command, what it printed, the interpreter and the fix. A sane
baseline with failing tests is fine: those failures are the base's, not the Builder's.

``autopack doctor`` asks the same question with the same function.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from autopack.verify.delta import EXIT_STATUS_ID
from autopack.verify.results import TestRun

TAIL_LINES = 25
LISTED = 5
EXIT_REASONS = {
    2: "pytest was interrupted before the tests ran (exit 2)",
    3: "pytest hit an internal error (exit 3, INTERNALERROR)",
    4: "pytest refused its own command line or configuration (exit 4)",
    5: "it collected no tests (exit 5)",
}
COMMAND_FIX = (
    "run the command by hand in a clean checkout of the base commit and fix what it prints "
    "(a clean checkout has only committed files); set the command as test_command in "
    "autopack.toml, or as the phase's tests.command"
)


@dataclass(frozen=True)
class BaselineProblem:
    """Why a baseline is not evidence, and how to make it so."""

    command: str
    reason: str
    fix: str
    output_tail: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    pytest: bool = True
    """Whether pytest ran (per-test results), rather than a command judged by its exit."""

    def __str__(self) -> str:
        return f"{self.details()}\nfix: {self.fix}"

    def details(self) -> str:
        """Everything but the fix: what ran, with which interpreter, and what it printed."""
        env = self.environment
        lines = [f"`{self.command}` gives no usable baseline on the base tree: {self.reason}"]
        if env.get("python"):
            lines.append(f"interpreter: {env['python']} (Python {env.get('python_version')})")
        elif self.pytest:
            lines.append("interpreter: unknown (pytest stopped before Autopack's probe loaded)")
        if "plugins" in env:
            lines.append(f"pytest plugins: {', '.join(env['plugins']) or 'none'}")
        if self.output_tail.strip():
            lines.append("it printed (tail):")
            lines += ["  " + line for line in self.output_tail.splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BaselineUnusable(RuntimeError):
    """The base tree's test run is no evidence: the run must stop before any Builder call."""

    def __init__(self, problem: BaselineProblem, run: TestRun) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.run = run


def baseline_problem(run: TestRun, fail_to_pass: Collection[str] = ()) -> BaselineProblem | None:
    """What makes ``run`` (the base tree's) useless as a baseline; ``None`` when it is sane.

    Files holding ``fail_to_pass`` tests may fail to collect: a phase that is to make
    them importable starts from exactly that.
    """
    found = _reason(run, {test.split("::", 1)[0] for test in fail_to_pass})
    if found is None:
        return None
    reason, fix = found
    tail = "\n".join(run.output_tail.strip().splitlines()[-TAIL_LINES:])
    environment = dict(run.environment)
    return BaselineProblem(run.command, reason, fix, tail, environment, run.kind == "pytest")


def _reason(run: TestRun, expected_files: set[str]) -> tuple[str, str] | None:
    if run.timed_out:
        return "it timed out", "raise test_timeout_s in autopack.toml, or make the tests faster"
    if run.kind != "pytest":
        return _exit_status_reason(run, expected_files)
    output = run.output_tail
    code = run.exit_code
    if code == 3 or "INTERNALERROR" in output:
        crashed = (
            "pytest crashed inside a plugin or a conftest hook (the output shows which): fix "
            "it, or disable the plugin with -p no:NAME in the test command"
        )
        return EXIT_REASONS[3], _fix(run, crashed)
    if code in EXIT_REASONS:
        return EXIT_REASONS[code], _fix(run, COMMAND_FIX)
    if code not in (0, 1):
        return f"the command exited {code} without test results", _fix(run, COMMAND_FIX)
    errors = [e for e in run.collection_errors if e.split("::", 1)[0] not in expected_files]
    if errors:
        more = f" (+{len(errors) - LISTED} more)" if len(errors) > LISTED else ""
        listed = ", ".join(errors[:LISTED]) + more
        reason = f"{len(errors)} test file(s) fail to collect: {listed}"
        unimportable = (
            "make them import on the base commit; if a phase is meant to make them "
            "importable, name their tests in its tests.fail_to_pass"
        )
        return reason, _fix(run, unimportable)
    if not run.outcomes:
        return "no test ran", _fix(run, COMMAND_FIX)
    return None


def _exit_status_reason(run: TestRun, expected_files: set[str]) -> tuple[str, str] | None:
    """A command judged by its exit status is one pseudo-test: failing at base, it leaves
    nothing an attempt could break, unless the phase is there to make it pass."""
    if run.exit_code == 0 or EXIT_STATUS_ID in expected_files:
        return None
    if run.exit_code is None or not 0 < run.exit_code < 126:
        return f"the command could not run (exit {run.exit_code})", COMMAND_FIX
    reason = (
        f"it fails (exit {run.exit_code}) and has no per-test results: against a failing "
        "baseline any attempt would pass"
    )
    fix = (
        "make it pass on a clean checkout of the base commit (a clean checkout has only "
        "committed files), or use pytest (per-test results tell pre-existing failures "
        f'apart); if the phase is to make it pass, put "{EXIT_STATUS_ID}" in its '
        "tests.fail_to_pass"
    )
    return reason, fix


def _fix(run: TestRun, fallback: str) -> str:
    """The fix the output points at: a missing module, an option no plugin provides."""
    python = run.environment.get("python") or "the interpreter the tests run with"
    missing = re.search(r"No module named '([\w.]+)'", run.output_tail)
    if missing:
        module = missing[1].split(".")[0]
        return (
            f"install {module} into {python}, or remove what needs it (a plugin in the "
            "project's pytest addopts, an import in a conftest or test file)"
        )
    unknown = re.search(r"unrecognized arguments: (.+)", run.output_tail)
    if unknown:
        return (
            f"the pytest options {unknown[1].strip()} (from the test command or the project's "
            f"addopts) belong to a plugin {python} does not have: install it there "
            "(pytest-cov gives --cov, pytest-xdist gives -n), or remove the options"
        )
    nothing_ran = run.exit_code == 5 or (run.exit_code in (0, 1) and not run.outcomes)
    if nothing_ran and not run.collection_errors:
        return (
            "point the test command at the tests, and commit them: the baseline runs on a "
            "clean checkout of the base commit (test_command in autopack.toml, or the "
            "phase's tests.command)"
        )
    return fallback
