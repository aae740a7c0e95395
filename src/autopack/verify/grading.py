"""The verification tree: the attempt's code, graded by the tests the Builder did not write.

Existing tests are judged with the base commit's test files and test configuration, as
the SWE-bench harness does: every test file and every file that configures pytest
(``conftest.py`` anywhere, ``pytest.ini``, ``pyproject.toml``, ``setup.cfg``, ``tox.ini``,
``sitecustomize.py``) that the attempt changed is put back to its base content for the
grading runs; one it added is left out; a new module that would shadow pytest, its
plugins, Autopack's plugins or the standard library is left out. The Builder's new test
files run in addition. What was put back or left out is reported, so the gate can ask a
person: a change to existing tests or their configuration lands only with approval.

The overlay is made in the attempt's worktree and undone afterwards; the change that
lands is the attempt's tree, which this never touches.
"""

from __future__ import annotations

import configparser
import fnmatch
import subprocess
import sys
import tomllib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autopack.verify.results import PLUGIN_MODULES
from autopack.workspace import git

TEST_DIRS = frozenset({"tests", "test", "testing"})
TEST_FILE_PATTERNS = ("test_*.py", "*_test.py")
WHOLE_FILE_CONFIGS = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"}
    | {"sitecustomize.py", "usercustomize.py"}
)
"""Files that only configure test runs (or Python's start-up): any change counts."""
SECTION_CONFIGS = {"pyproject.toml": "tool.pytest", "setup.cfg": "tool:pytest", "tox.ini": "pytest"}
"""Files that configure pytest in one section among others: a change to it counts."""
SHADOWABLE = frozenset(
    {"pytest", "_pytest", "pluggy", "py", "iniconfig", "coverage", "xdist", *PLUGIN_MODULES}
    | set(sys.stdlib_module_names)
)
"""Top-level modules the test run imports: a new module by that name would replace them."""


@dataclass
class GradingReport:
    """What the verification tree put back or left out, compared with the attempt's tree."""

    tests_edited: list[str] = field(default_factory=list)
    """Existing test files the attempt changed: graded in their base version."""
    tests_deleted: list[str] = field(default_factory=list)
    """Existing test files the attempt deleted: their tests count as deleted."""
    config_changed: list[str] = field(default_factory=list)
    """Test configuration the attempt changed, added or shadowed, with why."""

    @property
    def graded_as_is(self) -> bool:
        """Whether the verification tree is the attempt's tree (nothing put back)."""
        return not (self.tests_edited or self.tests_deleted or self.config_changed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Graded:
    """A file's content in the verification tree (``None``: left out)."""

    content: bytes | None


def is_test_config(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in WHOLE_FILE_CONFIGS or name in SECTION_CONFIGS


def is_test_file(path: str, base_test_files: Collection[str] = ()) -> bool:
    """A test module or anything in a test folder (helpers, data), or a file the baseline
    collected tests from (whatever ``python_files`` the project configured)."""
    name = path.rsplit("/", 1)[-1]
    if path in base_test_files or any(fnmatch.fnmatch(name, p) for p in TEST_FILE_PATTERNS):
        return True
    return bool(TEST_DIRS.intersection(path.split("/")[:-1]))


@contextmanager
def grading_tree(
    worktree: Path,
    base_tree: str,
    changed_files: Sequence[str],
    base_test_files: Collection[str],
    *,
    repo: Path | None = None,
) -> Iterator[GradingReport]:
    """Turn ``worktree`` (the attempt) into the verification tree, and back afterwards.

    ``worktree`` is a git worktree (its untracked files count too), or, with ``repo`` (a
    repository holding the base tree), a plain export of the attempt's tree.
    """
    objects = repo or worktree
    base_files = set(_git(objects, "ls-tree", "-r", "-z", "--name-only", base_tree).split("\0"))
    untracked = [] if repo else _git(worktree, "ls-files", "--others", "-z").split("\0")
    report = GradingReport()
    saved: dict[str, bytes | None] = {}
    try:
        for path in sorted({*changed_files, *untracked} - {""}):
            graded = _graded_content(
                worktree, objects, base_tree, path, base_files, base_test_files, report
            )
            if graded is not None:
                saved[path] = _read(worktree / path)
                _put(worktree / path, graded.content)
        yield report
    finally:
        for path, content in saved.items():
            _put(worktree / path, content)


def _graded_content(
    worktree: Path,
    objects: Path,
    base_tree: str,
    path: str,
    base_files: set[str],
    base_test_files: Collection[str],
    report: GradingReport,
) -> Graded | None:
    """What ``path`` holds in the verification tree, ``None`` when it is as in the attempt;
    records why in ``report``."""
    current = _read(worktree / path)
    if path not in base_files:
        if is_test_config(path) and _configures_pytest(path, current):
            report.config_changed.append(f"{path}: added")
            return Graded(None)
        shadowed = _shadowed_module(worktree, path)
        if shadowed:
            report.config_changed.append(f"{path}: shadows the module {shadowed!r}")
            return Graded(None)
        return None
    if not (is_test_config(path) or is_test_file(path, base_test_files)):
        return None
    base = git.read_blob(objects, f"{base_tree}:{path}")
    if base is None:
        raise git.GitError(f"{base_tree}:{path} is listed in the base tree but cannot be read")
    if current == base:
        return None
    if current is None and path in base_test_files:
        report.tests_deleted.append(path)
        return None
    if is_test_config(path):
        if _pytest_section(path, base) != _pytest_section(path, current):
            report.config_changed.append(f"{path}: {'deleted' if current is None else 'edited'}")
    else:
        report.tests_edited.append(path)
    return Graded(base)


def _configures_pytest(path: str, content: bytes | None) -> bool:
    """Whether a new config file can change a pytest run (a ``setup.cfg`` for flake8 cannot)."""
    return path.rsplit("/", 1)[-1] in WHOLE_FILE_CONFIGS or _pytest_section(path, content) != ""


def _pytest_section(path: str, content: bytes | None) -> str:
    """The part of a config file pytest reads, normalised ('' when there is none)."""
    name = path.rsplit("/", 1)[-1]
    if content is None:
        return ""
    text = content.decode("utf-8", errors="replace")
    if name not in SECTION_CONFIGS:
        return text
    try:
        if name == "pyproject.toml":
            section = tomllib.loads(text).get("tool", {}).get("pytest")
            return "" if section is None else repr(section)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
    except (tomllib.TOMLDecodeError, configparser.Error) as exc:
        return f"unreadable: {exc}"
    wanted = SECTION_CONFIGS[name]
    return repr(sorted(parser.items(wanted))) if parser.has_section(wanted) else ""


def _shadowed_module(worktree: Path, path: str) -> str:
    """The module a new file would replace when its folder is on ``sys.path``; or ''.

    A folder that is not a package can be on ``sys.path`` (the project root, ``src``, a
    test folder pytest inserts): ``pytest.py`` or ``json/__init__.py`` there would run
    instead of the real one, in the very process that grades the attempt.
    """
    parts = path.split("/")
    if not parts[-1].endswith(".py"):
        return ""
    name, folder = parts[-1].removesuffix(".py"), parts[:-1]
    while folder and (worktree.joinpath(*folder) / "__init__.py").exists():
        name, folder = folder[-1], folder[:-1]
    return name if name in SHADOWABLE else ""


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _put(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _git(worktree: Path, *args: str) -> str:
    """Autopack's trusted git (a Builder may have written the worktree's ``.git``)."""
    argv, env = git.command_line(worktree, args)
    done = subprocess.run(argv, cwd=worktree, env=env, capture_output=True, check=True)
    return done.stdout.decode("utf-8", errors="replace")
