"""Helpers for the API tests (a uniquely named module so conftest names cannot collide)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from autopack.events import PhaseStarted, StepCompleted, StepStarted
from autopack.store import Store

PLAN: dict[str, Any] = {
    "run": {"goal": "Add a greeting"},
    "tiers": [
        {
            "id": "only",
            "phases": [
                {"id": "greet", "goal": "Add hello.py", "scope": {"paths": ["hello.py"]}},
            ],
        }
    ],
}


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "Test"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README.md").write_text("# repo\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=path, check=True)
    return path


def plan(run_id: str) -> dict[str, Any]:
    return {**PLAN, "run": {**PLAN["run"], "id": run_id}}


def wait_for_approval(store: Store, run_id: str, phase_id: str = "greet") -> None:
    """Put a phase where a gate asking for a person puts it, through the event log."""
    store.append(run_id, PhaseStarted(phase_id=phase_id, attempt=1, base_commit="0" * 40))
    store.append(run_id, StepStarted(phase_id=phase_id, attempt=1, step="gate"))
    result = {"decision": "NEEDS_APPROVAL", "reasons": ["risk 72 > 60"], "proof_hash": "ab" * 32}
    store.append(run_id, StepCompleted(phase_id=phase_id, attempt=1, step="gate", result=result))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
