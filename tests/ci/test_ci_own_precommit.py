"""This repository's own .pre-commit-config.yaml runs the lint and format checks of
scripts/check.sh, and they stop a commit with a lint error or unformatted code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ci_helpers import GIT_ENV, git, load_yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".pre-commit-config.yaml"


def test_hooks_are_the_lint_and_format_steps_of_check_sh() -> None:
    hooks = load_yaml(CONFIG)["repos"][0]["hooks"]
    check_sh = (ROOT / "scripts" / "check.sh").read_text()
    assert [hook["entry"] for hook in hooks] == ["ruff check", "ruff format --check"]
    for hook in hooks:
        assert f"{hook['entry']} src tests bench" in check_sh
        assert hook["files"] == "^(src|tests|bench)/"


@pytest.mark.skipif(shutil.which("pre-commit") is None, reason="pre-commit is not installed")
def test_pre_commit_fails_on_lint_and_format_problems_and_passes_when_fixed(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    shutil.copy(CONFIG, repo / ".pre-commit-config.yaml")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    module = repo / "src" / "module.py"
    module.write_text("import os\nx=1\n")
    git(repo, "add", "-A")
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "cache")}

    def pre_commit() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pre-commit", "run", "--all-files"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    failed = pre_commit()
    assert failed.returncode == 1
    assert "F401" in failed.stdout  # unused import, from ruff check
    assert "ruff format --check" in failed.stdout and "1 file would be reformatted" in failed.stdout
    module.write_text("x = 1\n")
    git(repo, "add", "-A")
    passed = pre_commit()
    assert passed.returncode == 0, passed.stdout
