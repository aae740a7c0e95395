"""Runs of the demo plan with telemetry configured, and a loopback OTLP/HTTP collector."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from typer.testing import CliRunner

from autopack.cli import app
from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.engine.runtime import Runtime
from autopack.workspace import git


def demo_repo(where: Path, telemetry: str = "") -> Path:
    """The demo project as a git repository, its autopack.toml given ``telemetry`` (TOML)."""
    repo = prepare_demo_repo(where)
    if telemetry:
        config = repo / "autopack.toml"
        config.write_text(f"{config.read_text()}\n{telemetry}")
        git.git(repo, "commit", "-q", "-am", "telemetry settings")
    return repo


def run_demo(repo: Path, *, exit_code: int = 0) -> tuple[str, str]:
    """``autopack run`` of the demo plan with its scripted model; run id and output."""
    _, plan, script = demo_files()
    done = CliRunner().invoke(
        app, ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"]
    )
    assert done.exit_code == exit_code, done.output
    assert "Traceback" not in done.output
    runs = Runtime.open(repo).store.list_runs() if (repo / ".autopack").exists() else []
    return (runs[0].id if runs else ""), done.output


def tree(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of a span and its ancestors' kinds, from the root: ['run', 'phase', ...]."""
    chain = []
    current: ReadableSpan | None = span
    while current is not None:
        chain.append(current.name.split(" ")[0])
        parent = current.parent
        current = by_id[parent.span_id] if parent is not None else None
    return list(reversed(chain))


@dataclass
class Collector:
    """A loopback OTLP/HTTP receiver: it keeps every request's path, headers and body."""

    status: int = 200
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def bodies(self, path: str) -> list[bytes]:
        return [body for where, _, body in self.requests if where == path]


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            found.requests.append((self.path, dict(self.headers.items()), body))
            self.send_response(found.status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
