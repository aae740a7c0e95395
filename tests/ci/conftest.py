"""Fixtures: a target project, the `autopack` command, and a CI run of the generated
workflow against a bare "origin" the way a GitHub runner checks it out."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from ci_helpers import PIN, autopack_bin, git, make_project, run_env, run_step, workflow_steps
from typer.testing import CliRunner

from autopack.ci.cli import ci_app
from autopack.ci.contract import WORKFLOW_PATH

StepResults = list[tuple[str, subprocess.CompletedProcess[str]]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the contract written by `autopack ci init` and committed."""
    root = make_project(tmp_path / "project")
    result = CliRunner().invoke(ci_app, ["init", "--repo", str(root), "--autopack-source", PIN])
    assert result.exit_code == 0, result.output
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "CI contract")
    return root


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return autopack_bin(tmp_path_factory.mktemp("bin"))


@pytest.fixture
def ci_run(tmp_path: Path, project: Path, bin_dir: Path) -> Callable[..., StepResults]:
    """Push ``project`` to a bare origin, clone it as the runner does, check out
    ``branch`` and run the workflow's steps in order until one fails.

    The ``uses:`` steps are GitHub's; the install steps need PyPI, and this interpreter
    already has Autopack and pytest, so they are skipped (their pin is tested apart).
    """

    def run(branch: str = "main", ledger_base: str = "") -> StepResults:
        origin = tmp_path / "origin.git"
        subprocess.run(["rm", "-rf", str(origin), str(tmp_path / "ci")], check=True)
        git(tmp_path, "clone", "--quiet", "--mirror", str(project), str(origin))
        git(tmp_path, "clone", "--quiet", str(origin), "ci")
        checkout = tmp_path / "ci"
        git(checkout, "checkout", "--quiet", "-B", branch, f"origin/{branch}")
        env = run_env(bin_dir, LEDGER_BASE=ledger_base)
        results: StepResults = []
        for step in workflow_steps(checkout / WORKFLOW_PATH):
            if "run" not in step or step["name"].startswith("Install"):
                continue
            done = run_step(step, checkout, env)
            results.append((step["name"], done))
            if done.returncode != 0:
                break
        return results

    return run
