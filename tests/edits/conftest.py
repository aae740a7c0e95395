"""Fixtures: a worktree root in tmp_path and a one-call way to apply edit text."""

from __future__ import annotations

from pathlib import Path

import pytest
from edits_helpers import Apply

from autopack.edits import EditReport, PathPolicy, apply_edit_text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "repo"
    tree.mkdir()
    return tree


@pytest.fixture
def apply(root: Path) -> Apply:
    def run(text: str, fmt: str = "auto", **policy: tuple[str, ...]) -> EditReport:
        return apply_edit_text(text, PathPolicy(root, **policy), fmt)

    return run
