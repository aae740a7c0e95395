"""Fixture: a git repository with one commit and a README."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "--quiet", "--initial-branch=main")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "Test")
    (tmp_path / "README.md").write_text("# Demo\n\nIntro text.\n\n## Usage\n\nRun it.\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "commit", "--quiet", "-m", "init")
    return tmp_path
