"""The repo map lists what matters first and never exceeds its budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopack.roles import repo_map
from autopack.roles.tokens import estimate_tokens


def make_repo(root: Path, packages: int = 20, modules: int = 25) -> Path:
    for p in range(packages):
        pkg = root / "src" / f"pkg{p:02d}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        for m in range(modules):
            (pkg / f"mod{m:02d}.py").write_text(
                f"class Thing{m}:\n    def run(self):\n        pass\n\n"
                f"def helper_{m}(a, b):\n    return a\n\n_PRIVATE = 1\n"
            )
    return root


@pytest.mark.parametrize("budget", [50, 300, 2_000, 8_000])
def test_the_map_stays_within_its_budget(tmp_path: Path, budget: int) -> None:
    text = repo_map(make_repo(tmp_path), token_budget=budget, focus=["src/pkg03/**"])
    assert estimate_tokens(text) <= budget
    assert text.strip()


def test_focus_files_come_first_with_their_symbols(tmp_path: Path) -> None:
    text = repo_map(make_repo(tmp_path), token_budget=400, focus=["src/pkg07/mod05.py"])
    lines = text.splitlines()
    assert lines[:3] == ["src/pkg07/mod05.py", "  class Thing5: run", "  def helper_5(a, b)"]
    assert "_PRIVATE" not in text
    assert "more files not shown" in lines[-1]


def test_files_the_focus_mentions_come_next(tmp_path: Path) -> None:
    root = make_repo(tmp_path, packages=3, modules=5)
    (root / "src/pkg02/mod04.py").write_text("from pkg00 import mod03\n")
    lines = repo_map(root, token_budget=2_000, focus=["src/pkg02/mod04.py"]).splitlines()
    names = [line for line in lines if not line.startswith(" ")]
    assert names[0] == "src/pkg02/mod04.py"
    assert names.index("src/pkg00/mod03.py") < names.index("src/pkg02/mod00.py")


def test_symlinks_and_git_data_are_not_mapped(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def leaked(): pass\n")
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: x\n")
    (root / "a.py").write_text("def a(): pass\n")
    (root / "sub").mkdir()
    (root / "sub" / ".git").write_text("gitdir: ../.git/worktrees/sub\n")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "b.py").symlink_to(outside / "secret.py")
    text = repo_map(root, token_budget=1_000)
    assert text == "a.py\n  def a()"
