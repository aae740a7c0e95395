"""Helpers for the MCP tests: a repository with ledgers and runs, and the official SDK's
client connected to ``autopack mcp`` over stdio or to ``/mcp`` of a live API server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from autopack.engine.create import create_run
from autopack.engine.runtime import Runtime
from autopack.events import PhaseStarted, StepCompleted, StepStarted
from autopack.ledger import AttemptSummary, PhaseSummary, RunSummary, tidy
from autopack.plan import parse_plan_text

SECRET_ENV = "sk-ant-mcp-test-secret-0123456789"
"""A provider key the stdio server's environment holds; no result may carry it."""
PLAN = (
    "run: {goal: Add a greeting, id: %s, max_attempts: 1}\n"
    "tiers:\n"
    "  - id: only\n"
    "    phases:\n"
    "      - id: greet\n"
    "        goal: change a\n"
    "        scope: {paths: [a.py]}\n"
    '        tests: {command: "true"}\n'
)
SCRIPT = (
    "version: 1\nreplies:\n  '*':\n    builder:\n      - |\n        a.py\n"
    "        <<<<<<< SEARCH\n        A = 1\n        =======\n        A = 2\n"
    "        >>>>>>> REPLACE\n    auditor:\n      - {verdict: approve, summary: ok}\n"
)


@dataclass
class Served:
    """The API on a live port, with a key of each scope."""

    url: str
    secrets: dict[str, str]
    """An API key's secret for each scope."""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    """A git repository with one file, two ended runs' summaries and the ledgers tidy
    makes of them (two runs fixed the same failure the same way: one rule candidate)."""
    root.mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "README.md").write_text("# repo\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    runs = [fixed_run("run-a", "2026-11-24T10:00:00Z"), fixed_run("run-b", "2026-11-25T10:00:00Z")]
    for run in runs:
        run_dir = root / ".autopack" / "runs" / run.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(run.to_json())
    tidy(root, runs)
    return root


def fixed_run(run_id: str, ended_at: str) -> RunSummary:
    """A run whose phase failed on a pool timeout, then passed with a bigger pool."""
    attempts = (
        AttemptSummary(
            1, "retry", feedback="psycopg.OperationalError: connection timed out (pool exhausted)"
        ),
        AttemptSummary(
            2,
            "pass",
            change_summary="raise the connection pool size to match the worker count",
            root_cause="the pool was smaller than the number of workers",
            fix_kind="config",
        ),
    )
    return RunSummary(
        run_id=run_id,
        goal="Store orders in PostgreSQL",
        status="SUCCEEDED",
        ended_at=ended_at,
        phases=(PhaseSummary("storage", "Persist orders", "COMPLETE", ("src/db/**",), attempts),),
    )


def waiting_run(repo: Path, run_id: str) -> None:
    """A stored run whose phase waits for a person, put there through the event log as a
    gate asking for approval puts it."""
    rt = Runtime.open(repo)
    create_run(rt, parse_plan_text(PLAN % run_id), plan_source="test")
    store = rt.store
    store.append(run_id, PhaseStarted(phase_id="greet", attempt=1, base_commit="0" * 40))
    store.append(run_id, StepStarted(phase_id="greet", attempt=1, step="gate"))
    result = {"decision": "NEEDS_APPROVAL", "reasons": ["risk 72 > 60"], "proof_hash": "ab" * 32}
    store.append(run_id, StepCompleted(phase_id="greet", attempt=1, step="gate", result=result))
    store.close()


def server_env(**extra: str) -> dict[str, str]:
    """What ``autopack mcp`` needs from this process's environment (the SDK starts the
    server with a minimal one): this checkout's sources and the scratch proof-key folder."""
    keep = ("PYTHONPATH", "XDG_CONFIG_HOME", "PATH", "HOME")
    return {k: os.environ[k] for k in keep if k in os.environ} | extra


@asynccontextmanager
async def stdio_client(repo: Path, *args: str, **env: str) -> AsyncIterator[Client]:
    """The SDK's client on ``python -m autopack mcp --repo REPO ARGS`` over stdio."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "autopack", "mcp", "--repo", str(repo), *args],
        env=server_env(**env),
    )
    async with Client(params, read_timeout_seconds=120) as client:
        yield client


@asynccontextmanager
async def http_client(url: str, secret: str | None) -> AsyncIterator[Client]:
    """The SDK's client on ``URL/mcp`` with an API key (or none)."""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def text(result: Any) -> str:
    """All the text a tool or resource result carries."""
    parts = getattr(result, "content", None) or getattr(result, "contents", [])
    return "\n".join(str(getattr(part, "text", "")) for part in parts)


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
