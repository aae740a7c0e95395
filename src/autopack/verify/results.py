"""Running a test command and reading its outcome, per test where the runner allows it.

For pytest, Autopack's own plugin (``pytest_plugin/autopack_report.py``) reports from
inside pytest: every test gets an outcome under pytest's own node ID (the IDs
``pytest --collect-only -q`` prints and a plan's ``fail_to_pass`` uses), and a run that
did not finish its session, or ran no test at all, says so. Any other test command is
judged by its exit status alone, and the evidence says so.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autopack.workspace import git
from autopack.workspace.portable import portable
from autopack.workspace.runner import CommandResult, Sandbox

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
TAIL_CHARS = 4000
PYTEST_CONFIGS = ("pytest.ini", "conftest.py")
PYTEST_ARGS = "-p no:cacheprovider --continue-on-collection-errors -p autopack_report"
PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
PLUGIN_MODULES = ("autopack_report", "autopack_rerun", "autopack_impact", "autopack_env")
RERUN_REPORT = "reruns.json"
REPORT = "report.jsonl"
ENV_REPORT = "env.json"
VALUE_OPTIONS = frozenset(
    {"-k", "-m", "-p", "-c", "-o", "-W", "--ignore", "--ignore-glob", "--deselect", "--rootdir"}
    | {"--confcutdir", "--basetemp", "--junitxml", "--junit-xml", "--tb", "--maxfail"}
)
"""pytest options whose value is the next word (it may name a path, and must stay)."""


@dataclass(frozen=True)
class Rerun:
    """Rerun the tests that fail inside the same pytest process (``autopack_rerun``)."""

    rounds: int
    known_failing: Sequence[str] = ()
    """Tests the baseline already had failing: their failure is not news, no rerun."""
    fail_to_pass: Sequence[str] = ()
    """If one of these does not pass the attempt is blocked anyway: then nothing reruns."""
    repeat: Sequence[str] = ()
    """Rerun these even when they pass: new tests must prove stable."""


@dataclass(frozen=True)
class Rest:
    """After the given tests, run the rest of the suite in the same process, unless the
    given ones already block the attempt (see ``autopack_report``)."""

    known_failing: Sequence[str] = ()
    fail_to_pass: Sequence[str] = ()
    proof_rounds: int = 0
    """Reruns a failing affected test must fail too before it stops the affected tests."""


@dataclass
class TestRun:
    """One run of a test command: outcomes by test ID, or only an exit status."""

    __test__ = False  # not a pytest test class, despite the name

    command: str
    kind: str  # "pytest" (per-test outcomes from Autopack's plugin) | "exit_status"
    exit_code: int | None
    outcomes: dict[str, str] = field(default_factory=dict)
    collection_errors: list[str] = field(default_factory=list)
    collected: int = 0
    """Tests pytest collected (after deselection), whether or not they ran."""
    deselected: list[str] = field(default_factory=list)
    """Tests the run's configuration deselected (``-k``, ``--deselect``, a hook)."""
    finished: bool = True
    """Whether pytest finished its session (``False``: it exited or crashed midway)."""
    running: str = ""
    """The test that had started but not ended when the run stopped (a hang)."""
    continued: bool = False
    """Whether the rest of the suite ran in this process after the given tests (``Rest``)."""
    before_rest: list[str] = field(default_factory=list)
    """When it did: the tests that ran before the rest (the given, affected ones)."""
    not_run: list[str] = field(default_factory=list)
    """Affected tests left unrun: ``stopped_by`` had already failed the attempt (``Rest``)."""
    stopped_by: str = ""
    duration_s: float = 0.0
    output_tail: str = ""
    sandbox: str = ""
    timed_out: bool = False
    warning: str = ""
    reruns: dict[str, list[str]] = field(default_factory=dict)
    """Outcomes of the in-process reruns of tests that failed, per round (see ``Rerun``)."""
    environment: dict[str, Any] = field(default_factory=dict)
    """The interpreter (path, version) and the pytest plugins that ran (``autopack_env``)."""
    tampered: list[str] = field(default_factory=list)
    """Parts of pytest the code under test replaced, or outcomes it rewrote (the plugin's
    ``tampered`` lines); such a test counts as failed."""

    @property
    def passed(self) -> bool:
        """Whether the run as a whole succeeded."""
        return self.exit_code == 0 and not self.collection_errors and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestRun:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def detect_test_command(repo: Path, tree: str | None = None) -> str | None:
    """``python -m pytest`` when the repository visibly has Python tests, else ``None``.

    With ``tree`` (a git tree, the base commit's) it decides from that tree, so a change
    under test cannot switch its own grading off by removing what detection looks for.
    """
    files = _TreeFiles(repo, tree) if tree else _DiskFiles(repo)
    if files.is_dir("tests") or files.is_dir("test"):
        return "python -m pytest"
    if any(files.exists(name) for name in PYTEST_CONFIGS):
        return "python -m pytest"
    for config in ("pyproject.toml", "setup.cfg", "tox.ini"):
        if files.exists(config) and "pytest" in files.read(config):
            return "python -m pytest"
    if any(fnmatch.fnmatch(name, "test_*.py") for name in files.top_two_levels()):
        return "python -m pytest"
    return None


class _DiskFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(errors="replace")

    def top_two_levels(self) -> list[str]:
        return [p.name for p in [*self.root.glob("*.py"), *self.root.glob("*/*.py")]]


class _TreeFiles:
    def __init__(self, repo: Path, tree: str) -> None:
        self.repo, self.tree = repo, tree
        listed = _git(repo, "ls-tree", "-r", "--name-only", "-z", tree)
        self.names = set(listed.decode(errors="replace").split("\0")) - {""}

    def is_dir(self, rel: str) -> bool:
        return any(name.startswith(rel + "/") for name in self.names)

    def exists(self, rel: str) -> bool:
        return rel in self.names

    def read(self, rel: str) -> str:
        return _git(self.repo, "cat-file", "blob", f"{self.tree}:{rel}").decode(errors="replace")

    def top_two_levels(self) -> list[str]:
        return [name.rsplit("/", 1)[-1] for name in self.names if name.count("/") <= 1]


def _git(repo: Path, *args: str) -> bytes:
    """Autopack's trusted git (a Builder may have written the worktree's ``.git``)."""
    argv, env = git.command_line(repo, args)
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=True).stdout


def is_pytest(command: str) -> bool:
    return "pytest" in shlex.split(command)[:4] or " -m pytest" in command


def run_tests(
    sandbox: Sandbox,
    worktree: Path,
    command: str,
    *,
    test_ids: Sequence[str] = (),
    timeout_s: float = 900,
    env: Mapping[str, str] | None = None,
    coverage_file: Path | None = None,
    rerun: Rerun | None = None,
    exclude: Sequence[str] = (),
    rest: Rest | None = None,
) -> TestRun:
    """Run ``command`` (optionally narrowed to ``test_ids``) and read its outcomes.

    With ``coverage_file`` (pytest only) the impact plugin records per-test coverage there;
    with ``rerun`` the tests that fail are rerun in the same process (``TestRun.reruns``);
    ``exclude`` (test IDs or files) leaves out what an earlier run already graded; with
    ``rest`` the remainder of the suite follows ``test_ids`` in the same process.
    """
    if not is_pytest(command):
        done = sandbox.run(command, worktree, timeout_s=timeout_s)
        return _run_from(command, "exit_status", done, worktree)
    with tempfile.TemporaryDirectory(prefix="autopack-report-") as scratch:
        report = Path(scratch) / REPORT
        spec = Path(scratch) / "report.json"
        data: dict[str, Any] = {"report": str(report), "exclude": list(exclude)}
        if rest is not None:  # the whole suite, collected once, ``test_ids`` first
            narrowed, data["first"], test_ids = command, list(test_ids), ()
            data["continue"] = {
                "known_failing": list(rest.known_failing),
                "fail_to_pass": list(rest.fail_to_pass),
                "proof_rounds": rest.proof_rounds,
            }
        else:
            narrowed = _without_test_paths(command, worktree) if test_ids else command
        spec.write_text(json.dumps(data))
        args = [narrowed, PYTEST_ARGS]
        # Whole files excluded are not even imported again; single tests are deselected.
        args += [f"--ignore={shlex.quote(e)}" for e in exclude if "::" not in e]
        env = dict(env or {})
        env["AUTOPACK_REPORT_SPEC"] = str(spec)
        writable = [Path(scratch)]
        args.append("-p autopack_env")
        env["AUTOPACK_ENV_REPORT"] = str(Path(scratch) / ENV_REPORT)
        if coverage_file is not None:
            args.append("-p autopack_impact")
            env["AUTOPACK_COVERAGE_FILE"] = str(coverage_file)
            writable.append(coverage_file.parent)
        if rerun is not None:
            args.append("-p autopack_rerun")
            env["AUTOPACK_RERUN_SPEC"] = str(_write_rerun_spec(Path(scratch), rerun))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH")) if p
        )
        args += [shlex.quote(test_id) for test_id in test_ids]
        result = sandbox.run(
            " ".join(args), worktree, timeout_s=timeout_s, env=env, writable=writable
        )
        run = _run_from(command, "pytest", result, worktree)
        read_report(report.read_text() if report.exists() else "", run)
        run.reruns = _read_reruns(Path(scratch) / RERUN_REPORT)
        run.environment = _read_json(Path(scratch) / ENV_REPORT)
    return run


def read_report(text: str, run: TestRun) -> None:
    """Fill ``run`` from the plugin's report (see ``autopack_report``).

    A missing ``finished`` line means pytest never ended its session: whatever it printed
    and whatever its exit status, the run did not complete.
    """
    started: list[str] = []
    run.finished = False
    for line in text.splitlines():
        entry = json.loads(line) if line.strip() else {}
        if "test" in entry:
            run.outcomes[entry["test"]] = entry["outcome"]
        elif "start" in entry:
            started.append(entry["start"])
        elif "collect_error" in entry:
            run.collection_errors.append(entry["collect_error"])
        elif "collected" in entry:
            run.collected += len(entry["collected"])
            run.deselected += entry["deselected"]
        elif "continued" in entry:
            run.continued = bool(entry["continued"])
            run.before_rest = list(run.outcomes) if run.continued else []
        elif "stopped" in entry:
            run.not_run, run.stopped_by = list(entry["stopped"]), str(entry["by"])
        elif "tampered" in entry:
            run.tampered.append(entry["tampered"])
        elif "finished" in entry:
            run.finished = True
    run.collection_errors = sorted(set(run.collection_errors))
    run.running = next((t for t in reversed(started) if t not in run.outcomes), "")


def _write_rerun_spec(scratch: Path, rerun: Rerun) -> Path:
    spec = scratch / "rerun.json"
    data = {
        "rounds": rerun.rounds,
        "report": str(scratch / RERUN_REPORT),
        "known_failing": list(rerun.known_failing),
        "fail_to_pass": list(rerun.fail_to_pass),
        "repeat": list(rerun.repeat),
    }
    spec.write_text(json.dumps(data))
    return spec


def _read_reruns(path: Path) -> dict[str, list[str]]:
    """The plugin's rerun outcomes; none when it did not get to write them (a timeout)."""
    if not path.exists():
        return {}
    reruns: dict[str, list[str]] = json.loads(path.read_text())["reruns"]
    return reruns


def _read_json(path: Path) -> dict[str, Any]:
    """A report a plugin wrote; empty when pytest stopped before the plugin wrote it."""
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _without_test_paths(command: str, worktree: Path) -> str:
    """The pytest command without the paths it names, so given test IDs replace them.

    ``pytest tests tests/test_a.py::t`` runs all of ``tests``: left in, the command's own
    paths would turn every narrowed run (affected tests, flaky reruns) into the full suite.
    """
    words = shlex.split(command)
    start = next((i + 1 for i, w in enumerate(words) if Path(w).name in ("pytest", "py.test")), 0)
    kept = words[:start]
    for index in range(start, len(words)):
        word, previous = words[index], words[index - 1]
        names_path = (worktree / word.split("::", 1)[0]).exists()
        if word.startswith("-") or previous in VALUE_OPTIONS or not names_path:
            kept.append(word)
    return shlex.join(kept)


def _run_from(command: str, kind: str, result: CommandResult, worktree: Path) -> TestRun:
    """The run's record; its output tail is what retry feedback quotes to the Builder, so
    machine-specific paths are left out before the tail is cut (see ``portable``)."""
    return TestRun(
        command=command,
        kind=kind,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output_tail=portable(result.output, worktree)[-TAIL_CHARS:],
        sandbox=result.sandbox,
        timed_out=result.timed_out,
        warning=result.warning,
    )
