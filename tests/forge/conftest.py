"""A demo run (real ``autopack demo``, scripted model) whose repository has a bare git
repository as ``origin``, and a fake forge in front of it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.forge.fakeforge import FakeForge
from typer.testing import CliRunner

from autopack.cli import app

TOKEN = "ghp_S3cretT0kenThatMustNotLeak4242"


@pytest.fixture(scope="session")
def demo_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    where = tmp_path_factory.mktemp("forge-demo") / "demo"
    done = CliRunner().invoke(app, ["demo", "--dir", str(where)])
    assert done.exit_code == 0, done.output
    return where, next((where / ".autopack" / "runs").iterdir()).name


@pytest.fixture
def demo(demo_once: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A copy of the demo repository, with a fresh bare ``origin`` that has ``main``."""
    source, run_id = demo_once
    repo = tmp_path / "demo"
    shutil.copytree(source, repo, symlinks=True)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "push", "-q", "origin", "main"], check=True)
    return repo, run_id


@pytest.fixture
def forge(demo: tuple[Path, str], tmp_path: Path) -> Iterator[FakeForge]:
    fake = FakeForge(remote=tmp_path / "remote.git", token=TOKEN).start()
    yield fake
    fake.stop()


def pr_args(forge: FakeForge, repo: Path, run_id: str, *extra: str) -> list[str]:
    return [
        "pr",
        run_id,
        "-C",
        str(repo),
        "--forge",
        "github",
        "--api-url",
        forge.url,
        "--repository",
        forge.repository,
        *extra,
    ]
