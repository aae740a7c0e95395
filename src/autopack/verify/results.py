"""Running a test command and reading its outcome, per test where the runner allows it.

For pytest the command is extended to write JUnit XML, and every test gets an outcome
under its pytest node ID (the same IDs a plan's ``fail_to_pass`` uses). Any other test
command is judged by its exit status alone, and the evidence says so.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autopack.workspace.runner import CommandResult, Sandbox

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
TAIL_CHARS = 4000
PYTEST_CONFIGS = ("pytest.ini", "conftest.py")
PYTEST_ARGS = "-p no:cacheprovider -o junit_family=xunit1 --continue-on-collection-errors"
PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
RERUN_REPORT = "reruns.json"
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


@dataclass
class TestRun:
    """One run of a test command: outcomes by test ID, or only an exit status."""

    __test__ = False  # not a pytest test class, despite the name

    command: str
    kind: str  # "junit" | "exit_status"
    exit_code: int | None
    outcomes: dict[str, str] = field(default_factory=dict)
    collection_errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    output_tail: str = ""
    sandbox: str = ""
    timed_out: bool = False
    warning: str = ""
    reruns: dict[str, list[str]] = field(default_factory=dict)
    """Outcomes of the in-process reruns of tests that failed, per round (see ``Rerun``)."""
    environment: dict[str, Any] = field(default_factory=dict)
    """The interpreter (path, version) and the pytest plugins that ran (``autopack_env``)."""

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


def detect_test_command(repo: Path) -> str | None:
    """``python -m pytest`` when the repository visibly has Python tests, else ``None``."""
    if (repo / "tests").is_dir() or (repo / "test").is_dir():
        return "python -m pytest"
    if any((repo / name).exists() for name in PYTEST_CONFIGS):
        return "python -m pytest"
    for config in ("pyproject.toml", "setup.cfg", "tox.ini"):
        path = repo / config
        if path.is_file() and "pytest" in path.read_text(errors="replace"):
            return "python -m pytest"
    if any(repo.glob("test_*.py")) or any(repo.glob("*/test_*.py")):
        return "python -m pytest"
    return None


def is_pytest(command: str) -> bool:
    return "pytest" in shlex.split(command)[:4] or " -m pytest" in command


def _node_id(case: ET.Element) -> str:
    """Rebuild the pytest node ID from a JUnit ``testcase`` (xunit1 carries ``file``)."""
    classname, name = case.get("classname", ""), case.get("name", "")
    file = case.get("file")
    if not file:
        parts = classname.split(".")
        return "::".join([*parts, name]) if classname else name
    module = file.removesuffix(".py").replace("/", ".")
    rest = classname[len(module) + 1 :] if classname.startswith(module) else ""
    return "::".join([file, *(p for p in rest.split(".") if p), name])


def _outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "error" in tags:
        return ERROR
    if "failure" in tags:
        return FAILED
    if "skipped" in tags:
        return SKIPPED
    return PASSED


def parse_junit(xml_text: str) -> tuple[dict[str, str], list[str]]:
    """Outcomes by node ID, and the files that failed to collect."""
    outcomes: dict[str, str] = {}
    collection_errors: list[str] = []
    for case in ET.fromstring(xml_text).iter("testcase"):
        error = case.find("error")
        if error is not None and error.get("message") == "collection failure":
            collection_errors.append(case.get("file") or case.get("name") or "?")
            continue
        node = _node_id(case)
        outcome = _outcome(case)
        # A teardown error is reported as a second testcase with the same ID: worst wins.
        if outcomes.get(node) in (FAILED, ERROR) and outcome in (PASSED, SKIPPED):
            continue
        outcomes[node] = outcome
    return outcomes, sorted(set(collection_errors))


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
) -> TestRun:
    """Run ``command`` (optionally narrowed to ``test_ids``) and read its outcomes.

    With ``coverage_file`` (pytest only) the impact plugin records per-test coverage there;
    with ``rerun`` the tests that fail are rerun in the same process (``TestRun.reruns``).
    """
    if not is_pytest(command):
        return _run_from(
            command, "exit_status", sandbox.run(command, worktree, timeout_s=timeout_s)
        )
    with tempfile.TemporaryDirectory(prefix="autopack-junit-") as scratch:
        report = Path(scratch) / "junit.xml"
        narrowed = _without_test_paths(command, worktree) if test_ids else command
        args = [narrowed, PYTEST_ARGS, f"--junitxml={shlex.quote(str(report))}"]
        env = dict(env or {})
        writable = [Path(scratch)]
        plugins = {"autopack_env": {"AUTOPACK_ENV_REPORT": str(Path(scratch) / ENV_REPORT)}}
        if coverage_file is not None:
            plugins["autopack_impact"] = {"AUTOPACK_COVERAGE_FILE": str(coverage_file)}
            writable.append(coverage_file.parent)
        if rerun is not None:
            spec = _write_rerun_spec(Path(scratch), rerun)
            plugins["autopack_rerun"] = {"AUTOPACK_RERUN_SPEC": str(spec)}
        path = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH")) if p)
        env["PYTHONPATH"] = path
        for name, variables in plugins.items():
            args.append(f"-p {name}")
            env.update(variables)
        args += [shlex.quote(test_id) for test_id in test_ids]
        result = sandbox.run(
            " ".join(args), worktree, timeout_s=timeout_s, env=env, writable=writable
        )
        outcomes, errors = parse_junit(report.read_text()) if report.exists() else ({}, [])
        reruns = _read_reruns(Path(scratch) / RERUN_REPORT)
        environment = _read_json(Path(scratch) / ENV_REPORT)
    if result.exit_code in (2, 3, 4) and not outcomes and not errors:
        errors = [f"pytest exited with {result.exit_code} before running any test"]
    run = _run_from(command, "junit", result, outcomes, errors)
    run.reruns = reruns
    run.environment = environment
    return run


def _write_rerun_spec(scratch: Path, rerun: Rerun) -> Path:
    spec = scratch / "rerun.json"
    data = {
        "rounds": rerun.rounds,
        "report": str(scratch / RERUN_REPORT),
        "known_failing": list(rerun.known_failing),
        "fail_to_pass": list(rerun.fail_to_pass),
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


def _run_from(
    command: str,
    kind: str,
    result: CommandResult,
    outcomes: dict[str, str] | None = None,
    errors: list[str] | None = None,
) -> TestRun:
    return TestRun(
        command=command,
        kind=kind,
        exit_code=result.exit_code,
        outcomes=outcomes or {},
        collection_errors=errors or [],
        duration_s=result.duration_s,
        output_tail=result.output[-TAIL_CHARS:],
        sandbox=result.sandbox,
        timed_out=result.timed_out,
        warning=result.warning,
    )
