"""Helpers for the CI tests: a target project built with plain git, the `autopack`
command on PATH, and the generated files' commands run the way CI runs them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from autopack.ledger.entries import Ledger, render_ledger
from autopack.ledger.tidy import tidy

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}
TEST_COMMAND = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -p no:cacheprovider"
SHIM = """#!{python}
import sys

import typer

from autopack.ci.cli import mount
from autopack.ledger.cli import tidy_command

app = typer.Typer(name="autopack")
app.command("tidy")(tidy_command)
mount(app)
sys.exit(app())
"""


def git(repo: Path, *args: str, input_text: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        input=input_text,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=True,
    )
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


PIN = "autopack @ git+https://git.example/team/autopack@0123456789abcdef0123456789abcdef01234567"
"""What the tests pass to `autopack ci init --autopack-source`."""


def build_ledger() -> str:
    ledger = Ledger.empty("build")
    ledger.append(
        "2026-11-20",
        "First run",
        {"Status": "SUCCEEDED", "Changed": "src/app.py", "Verified": "1 test passes"},
    )
    return render_ledger(ledger)


def make_project(root: Path) -> Path:
    """A small Python project on ``main``: one passing test, autopack.toml, a ledger."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "app.py").write_text("def answer():\n    return 42\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(
        "from app import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    )
    (root / "autopack.toml").write_text(f'test_command = "{TEST_COMMAND}"\n')
    (root / "docs").mkdir()
    (root / "docs" / "BUILD_HISTORY.md").write_text(build_ledger())
    tidy(root, [], commit=False)  # the README and INDEX blocks, as Autopack keeps them
    commit_all(root, "project")
    return root


def autopack_bin(folder: Path) -> Path:
    """A folder with the ``autopack`` command to put first on PATH.

    The installed console script is used once it has the commands the contract runs;
    until the main CLI mounts them, a script that mounts them the same way
    (``tidy_command``, :func:`autopack.ci.cli.mount`) stands in for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    installed = shutil.which("autopack")
    if installed and _has_commands(installed):
        (folder / "autopack").symlink_to(installed)
    else:
        script = folder / "autopack"
        script.write_text(SHIM.format(python=sys.executable))
        script.chmod(0o755)
    return folder


def _has_commands(executable: str) -> bool:
    done = subprocess.run([executable, "--help"], capture_output=True, text=True, check=False)
    return all(name in done.stdout for name in ("tidy", "verify-proof", "doctor"))


def run_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, **GIT_ENV, "PATH": path, "NO_COLOR": "1", **extra}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def workflow_steps(path: Path) -> list[dict[str, Any]]:
    """The steps of the workflow's only job."""
    jobs = load_yaml(path)["jobs"]
    assert len(jobs) == 1
    return list(next(iter(jobs.values()))["steps"])


def run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A ``run:`` step the way GitHub's runner does: ``bash -e -o pipefail``.

    ``${{ }}`` expressions in the step's ``env`` are GitHub's to evaluate; callers pass
    the values an event would give in ``env``.
    """
    script = textwrap.dedent(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def hook_command(hook: dict[str, Any]) -> list[str]:
    """The argv pre-commit runs for a hook that takes no file names."""
    assert hook.get("pass_filenames") is False
    return [*shlex.split(hook["entry"]), *hook.get("args", [])]


def add_phase_commit(
    repo: Path,
    run_id: str,
    phase_id: str,
    prev_proof_hash: str | None,
    *,
    decision: str = "PASS",
    approval: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Land one phase on ``autopack/<run_id>`` the way the engine does, with plain git:
    a commit with Autopack trailers and its proof as a note. Returns (commit, proof hash).
    """
    from autopack.gate import NOTES_REF, SIGNATURE_TRAILER, load_key, proof_hash

    branch = f"autopack/{run_id}"
    if not git(repo, "branch", "--list", branch):
        git(repo, "branch", branch, "main")
    git(repo, "checkout", "--quiet", branch)
    base_tree = git(repo, "rev-parse", "HEAD^{tree}")
    (repo / f"{phase_id}.py").write_text(f"PHASE = {phase_id!r}\n")
    git(repo, "add", "-A")
    proof = {
        "version": 1,
        "run_id": run_id,
        "phase_id": phase_id,
        "attempt": 1,
        "base_tree": base_tree,
        "result_tree": git(repo, "write-tree"),
        "diff": git(repo, "diff", "--cached", "--binary") + "\n",
        "decision": {"decision": decision, "reasons": []},
        "approval": approval,
        "prev_proof_hash": prev_proof_hash,
    }
    digest = proof_hash(proof)
    key = load_key(repo, create=True)
    assert key is not None
    message = (
        f"{phase_id}: add {phase_id}.py\n\n"
        f"Autopack-Run: {run_id}\nAutopack-Phase: {phase_id}\n"
        f"Autopack-Attempt: 1\nAutopack-Proof: {digest}\n"
        f"{SIGNATURE_TRAILER}: {key.sign(digest)}\n"
    )
    git(repo, "commit", "--quiet", "-F", "-", input_text=message)
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "notes", f"--ref={NOTES_REF}", "add", "-F", "-", sha, input_text=json.dumps([proof]))
    git(repo, "checkout", "--quiet", "main")
    return sha, digest


def add_run(repo: Path, run_id: str, phases: int = 2) -> list[str]:
    """A run branch with ``phases`` chained phase commits; their shas, oldest first."""
    shas, prev = [], None
    for number in range(1, phases + 1):
        sha, prev = add_phase_commit(repo, run_id, f"p{number}", prev)
        shas.append(sha)
    return shas
