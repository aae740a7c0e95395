"""The repo map's fast paths give what the plain definitions give."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from autopack.plan import path_matches
from autopack.roles import repomap
from autopack.roles.repomap import list_files, scope_matcher

SEGMENTS = ["pkg", "a.py", ".", "", "[ab].py", ".hidden", "b.py"]
PATTERN_SEGMENTS = ["pkg", "a.py", ".", "", "[ab].py", "**", "*", "*.py", "?.py"]


def joined(segments: list[str], most: int) -> list[str]:
    return sorted(
        {
            "/".join(combo)
            for n in range(1, most + 1)
            for combo in itertools.product(segments, repeat=n)
        }
    )


def test_scope_matcher_agrees_with_path_matches_on_every_small_path_and_pattern() -> None:
    paths = joined(SEGMENTS, 3)
    for pattern in [*joined(PATTERN_SEGMENTS, 2), "pkg/**/a.py", "./pkg//[ab].py", "pkg/./*/"]:
        for patterns in ([pattern], [pattern, "pkg/b.py"]):
            covers = scope_matcher(patterns)
            expected = [p for p in paths if any(path_matches(p, q) for q in patterns)]
            assert [p for p in paths if covers(p)] == expected, patterns
    assert not any(scope_matcher([])(p) for p in paths)


def test_a_remembered_folder_listing_follows_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repomap, "SETTLED_NS", 20_000_000)  # folders settle after 20 ms
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("B = 1\n")
    changes = [
        lambda: (tmp_path / "pkg" / "c.py").write_text("C = 1\n"),
        lambda: (tmp_path / "pkg" / "a.py").unlink(),
        lambda: (tmp_path / "pkg" / "sub" / "b.py").rename(tmp_path / "pkg" / "sub" / "d.py"),
        lambda: (tmp_path / "pkg" / "c.py").unlink() or (tmp_path / "pkg" / "c.py").mkdir(),
        lambda: (tmp_path / "pkg" / "c.py" / "e.py").write_text("E = 1\n"),
        lambda: (
            (tmp_path / "pkg" / "sub" / "d.py").unlink()
            or (tmp_path / "pkg" / "sub" / "d.py").symlink_to(tmp_path / "pkg" / "c.py" / "e.py")
        ),
    ]
    expected = [
        ["pkg/a.py", "pkg/c.py", "pkg/sub/b.py"],
        ["pkg/c.py", "pkg/sub/b.py"],
        ["pkg/c.py", "pkg/sub/d.py"],
        ["pkg/sub/d.py"],
        ["pkg/c.py/e.py", "pkg/sub/d.py"],
        ["pkg/c.py/e.py"],
    ]
    time.sleep(0.05)
    assert list_files(tmp_path) == ["pkg/a.py", "pkg/sub/b.py"]
    for change, files in zip(changes, expected, strict=True):
        change()
        assert list_files(tmp_path) == files
        time.sleep(0.05)  # let the folders settle so that their listings are remembered
        assert list_files(tmp_path) == files
