"""A small git repository with a pytest suite, and a way to check out its base tree."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

CALC = """\
def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def div(a, b):
    raise NotImplementedError
"""

GEO = """\
def area(w, h):
    return w * h
"""

TEST_CALC = """\
import calc


def test_add():
    assert calc.add(2, 3) == 5


def test_sub():
    assert calc.sub(5, 3) == 2


def test_preexisting_failure():
    assert calc.add(1, 1) == 3


def test_div():
    assert calc.div(6, 3) == 2
"""

TEST_GEO = """\
import pathlib

import geo


def test_area():
    assert geo.area(2, 3) == 6


def test_flaky_once():
    trigger = pathlib.Path(__file__).parent.parent / "flaky_trigger"
    if trigger.exists():
        trigger.unlink()
        raise AssertionError("failed once")
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def init_repo(repo: Path, files: dict[str, str]) -> str:
    """Create and commit ``files``; return the commit's tree hash."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "Test")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return git(repo, "rev-parse", "HEAD^{tree}")


def checkout_factory(repo: Path) -> Callable[[], AbstractContextManager[Path]]:
    """The base tree in a throwaway git worktree, as the engine would provide it."""

    @contextmanager
    def checkout() -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="base-") as scratch:
            target = Path(scratch) / "wt"
            git(repo, "worktree", "add", "-q", "--detach", str(target), "HEAD")
            try:
                yield target
            finally:
                git(repo, "worktree", "remove", "--force", str(target))

    return checkout


class Project(NamedTuple):
    repo: Path
    tree: str
    checkout: Callable[[], AbstractContextManager[Path]]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    repo = tmp_path / "project"
    tree = init_repo(
        repo,
        {
            "calc.py": CALC,
            "geo.py": GEO,
            "pytest.ini": "[pytest]\npythonpath = .\n",
            "tests/test_calc.py": TEST_CALC,
            "tests/test_geo.py": TEST_GEO,
        },
    )
    return Project(repo, tree, checkout_factory(repo))


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[dict[str, str]], Project]:
    """A project made of the given files, committed as its base tree."""

    def make(files: dict[str, str]) -> Project:
        repo = tmp_path / "custom"
        tree = init_repo(repo, {"pytest.ini": "[pytest]\npythonpath = .\n", **files})
        return Project(repo, tree, checkout_factory(repo))

    return make
