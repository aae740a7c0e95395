"""The path policy refuses each dangerous path with its own reason, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from edits_helpers import Apply, snapshot, sr

from autopack.edits import PathPolicy, PathRefused


def reason(policy: PathPolicy, rel: str) -> str:
    with pytest.raises(PathRefused) as caught:
        policy.resolve_write(rel)
    return caught.value.reason


def test_ordinary_path_resolves_inside_root(root: Path) -> None:
    assert PathPolicy(root).resolve_write("src/a.py") == root.resolve() / "src" / "a.py"


@pytest.mark.parametrize(
    ("rel", "code"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/x.py", "absolute"),
        ("../outside.py", "traversal"),
        ("src/../../outside.py", "traversal"),
        ("src\\..\\..\\outside.py", "traversal"),
        (".git/config", "git_dir"),
        ("sub/.git/hooks/pre-commit", "git_dir"),
        (".autopack/autopack.db", "autopack_dir"),
        ("", "invalid"),
        (".", "invalid"),
    ],
)
def test_each_bad_path_has_its_own_reason(root: Path, rel: str, code: str) -> None:
    assert reason(PathPolicy(root), rel) == code


def test_symlink_leading_out_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "link")
    assert reason(PathPolicy(root), "link/x.py") == "symlink_escape"


def test_symlink_into_git_is_refused(root: Path) -> None:
    (root / ".git").mkdir()
    os.symlink(root / ".git", root / "innocent")
    assert reason(PathPolicy(root), "innocent/config") == "git_dir"


def test_protected_glob_is_refused_even_in_scope(root: Path) -> None:
    policy = PathPolicy(root, scope=("**",), protected=("*.lock", ".github/**"))
    assert reason(policy, "poetry.lock") == "protected"
    assert reason(policy, ".github/workflows/ci.yml") == "protected"


def test_out_of_scope_is_refused_but_readable(root: Path) -> None:
    policy = PathPolicy(root, scope=("src/pkg",))
    assert policy.resolve_write("src/pkg/mod.py").name == "mod.py"
    assert reason(policy, "src/other.py") == "out_of_scope"
    assert policy.resolve_read("src/other.py").name == "other.py"


def test_reads_refuse_git_and_escapes(root: Path) -> None:
    policy = PathPolicy(root, scope=("src",))
    for rel in (".git/config", "../x", "/etc/passwd"):
        with pytest.raises(PathRefused):
            policy.resolve_read(rel)


def test_refused_path_in_an_edit_set_writes_nothing(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("x = 1\n")
    before = snapshot(root)
    text = sr("a.py", "x = 1\n", "x = 2\n") + sr("../evil.py", "", "boom\n")
    report = apply(text)
    assert not report.applied
    assert report.refusals == [
        {"path": "../evil.py", "reason": "traversal", "detail": "'..' would leave the worktree"}
    ]
    assert snapshot(root) == before
    assert not (root.parent / "evil.py").exists()


def test_out_of_scope_edit_is_refused_with_reason(root: Path, apply: Apply) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "a.md").write_text("hello\n")
    report = apply(sr("docs/a.md", "hello\n", "bye\n"), scope=("src/**",))
    assert [r["reason"] for r in report.refusals] == ["out_of_scope"]
    assert (root / "docs" / "a.md").read_text() == "hello\n"
