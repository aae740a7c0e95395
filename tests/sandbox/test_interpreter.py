"""The sandbox sees the user's interpreter and virtualenv wherever they live, /tmp included.

The sandbox has a private /tmp, so a virtualenv under /tmp used to vanish inside it and
the project's tests could not import what was installed there. Here the virtualenv
holds a module the project's test imports; the run lands only if the test passes in the
sandbox, at the baseline and after the Builder's change.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sandbox_helpers import autopack

from autopack.engine.runtime import Runtime
from autopack.states import RunState
from autopack.workspace import git

PLAN = """\
run: {goal: bump A}
tiers:
  - id: t
    phases:
      - id: bump
        goal: Set A to 2
        scope: {paths: [a.py]}
        tests: {command: "%s"}
"""


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    """A virtualenv under /tmp over this interpreter, with a module only it has."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="autopack-venv-") as where:
        path = Path(where) / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
            check=True,
        )
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        (path / "lib" / version / "site-packages" / "only_in_venv.py").write_text("VALUE = 42\n")
        yield path


def make_repo(base: Path, test_command: str) -> Path:
    repo = base / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    test = "import only_in_venv\n\n\ndef test_venv():\n    assert only_in_venv.VALUE == 42\n"
    (repo / "tests" / "test_venv.py").write_text(test)
    (repo / "autopack.toml").write_text(f'sandbox = "bwrap"\ntest_command = "{test_command}"\n')
    (repo / ".gitignore").write_text(".autopack/\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    edit = "a.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"
    approve = {"verdict": "approve", "summary": "ok", "issues": []}
    script = {"version": 1, "replies": {"bump": {"builder": [edit], "auditor": [approve]}}}
    (base / "script.yaml").write_text(yaml.safe_dump(script))
    (base / "plan.yaml").write_text(PLAN % test_command)
    return repo


@pytest.mark.parametrize("how", ["autopack runs in the venv", "the venv is activated"])
def test_a_virtualenv_under_tmp_works_inside_the_sandbox(
    how: str, venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "autopack runs in the venv":
        python, command = str(venv / "bin" / "python"), "python -m pytest -q"
    else:
        monkeypatch.setenv("VIRTUAL_ENV", str(venv))
        python, command = sys.executable, f"{venv}/bin/python -m pytest -q"
    base = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="autopack-venv-test-"))
    try:
        repo = make_repo(base, command)
        args = ["run", str(base / "plan.yaml"), "-C", str(repo)]
        done = autopack(repo, *args, "--model", f"scripted:{base / 'script.yaml'}", python=python)
        (row,) = Runtime.open(repo).store.list_runs()
        view = Runtime.open(repo).store.view(row.id)
        assert view.state is RunState.SUCCEEDED, done.stdout + done.stderr
        assert git.git(repo, "show", f"{view.branch}:a.py") == "A = 2"
    finally:
        shutil.rmtree(base, ignore_errors=True)
