"""A hostile Builder's rig: a real repository outside /tmp, host secrets, a scripted run."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from autopack.engine.runtime import Runtime
from autopack.projection import RunView
from autopack.workspace import git

PLAN = """\
run: {goal: a harmless looking change}
tiers:
  - id: t
    phases:
      - id: change
        goal: Change a
        scope: {paths: [a.py, tests/conftest.py]}
        tests: {command: "python -m pytest -q -p no:cacheprovider"}
"""


@dataclass
class Host:
    """What the attacks aim at, all made fresh for one test and removed afterwards."""

    base: Path
    repo: Path
    token: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def root_secret(self) -> Path:
        """A secret in root's home folder, as a credential file would be."""
        return Path("/root") / f"autopack-test-secret-{self.token}"

    @property
    def other_checkout(self) -> Path:
        return self.base / "other-checkout"

    @property
    def marker(self) -> Path:
        """Written by an attack that could make the root filesystem writable."""
        return self.base / f"marker-{self.token}"

    @property
    def tmp_marker(self) -> Path:
        """Written by an attack that could reach the host's /tmp."""
        return Path("/tmp") / f"autopack-marker-{self.token}"

    def markers(self) -> list[Path]:
        """Files an escaped command would leave on the host: beside the repository, in the
        host's /tmp, in /usr and in the interpreter's tree (both bound read-only)."""
        name = f"autopack-marker-{self.token}"
        return [self.marker, self.tmp_marker, Path("/usr/local", name), Path(sys.prefix, name)]

    def secrets(self) -> dict[str, str]:
        """Every secret the attacks try to read, by where it lives."""
        return {
            "root secret": f"root-secret-{self.token}",
            "other checkout": f"other-secret-{self.token}",
            "api key name": f"leak-key-{self.token}",
        }


def make_host(limits: str) -> Iterator[Host]:
    """The repository (with an API key row in its .autopack/autopack.db) and a sibling
    checkout under /var/tmp, a secret under /root; ``limits`` goes into autopack.toml."""
    base = Path(f"/var/tmp/autopack-sandbox-test-{secrets.token_hex(6)}")
    host = Host(base, base / "repo")
    (host.repo / "tests").mkdir(parents=True)
    (host.repo / "a.py").write_text("A = 1\n")
    (host.repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    settings = f'sandbox = "bwrap"\ntest_command = "python -m pytest -q"\n{limits}'
    (host.repo / "autopack.toml").write_text(settings)
    (host.repo / ".gitignore").write_text(".autopack/\n")
    git.git(host.repo, "init", "-q", "-b", "main")
    git.git(host.repo, "add", "-A")
    git.git(host.repo, "commit", "-q", "-m", "start")
    host.other_checkout.mkdir()
    (host.other_checkout / "secret.txt").write_text(host.secrets()["other checkout"] + "\n")
    host.root_secret.write_text(host.secrets()["root secret"] + "\n")
    autopack(host.repo, "keys", "create", host.secrets()["api key name"], "-C", str(host.repo))
    try:
        yield host
    finally:
        shutil.rmtree(base, ignore_errors=True)
        host.root_secret.unlink(missing_ok=True)
        for marker in host.markers():
            marker.unlink(missing_ok=True)


def autopack(
    cwd: Path, *args: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, started by ``python``."""
    command = [python, "-c", "from autopack.cli import app; app()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def run_hostile(host: Host, replies: list[object]) -> tuple[subprocess.CompletedProcess[str], str]:
    """``autopack run`` with a Builder that answers ``replies``; returns the CLI's result
    and the run's id."""
    script = {"version": 1, "replies": {"change": {"builder": replies, "auditor": []}}}
    (host.base / "script.yaml").write_text(yaml.safe_dump(script))
    (host.base / "plan.yaml").write_text(PLAN)
    done = autopack(
        host.repo,
        "run",
        str(host.base / "plan.yaml"),
        "-C",
        str(host.repo),
        "--model",
        f"scripted:{host.base / 'script.yaml'}",
    )
    (row,) = Runtime.open(host.repo).store.list_runs()
    return done, row.id


def run_call(command: str, timeout_s: int = 60) -> dict[str, object]:
    return {"name": "run", "arguments": {"command": command, "timeout_s": timeout_s}}


def write_call(path: str, content: str) -> dict[str, object]:
    return {"name": "write_file", "arguments": {"path": path, "content": content}}


FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}


def evidence_text(host: Host, run_id: str) -> str:
    """Everything the run recorded that leaves the machine or that a person reads: the
    cassette (what the model was sent), the events, the evidence of every phase."""
    run_dir = Runtime.open(host.repo).run_dir(run_id)
    texts = [path.read_text(errors="replace") for path in run_dir.rglob("*") if path.is_file()]
    events = Runtime.open(host.repo).store.events(run_id)
    texts += [json.dumps(event.data) for event in events]
    return "\n".join(texts)


def final_view(host: Host, run_id: str) -> RunView:
    return Runtime.open(host.repo).store.view(run_id)
