"""Benchmark: the API under a dashboard-like load on loopback.

A server process (uvicorn, the real app, no embedded executor) serves a store holding
many runs; one run in the server process emits events at a steady rate. Client
processes hold 50 SSE streams on the emitting run and 50 readers of ``GET /runs/{id}``
for random runs, each reader paced as a dashboard page re-reading its run (at most
every 150 ms, the dashboard's render throttle). Read latency is counted from the
moment a read was due, so a server that falls behind is not hidden by clients that
wait for it. The server starts cold, as after a restart: nothing of any run is kept in
memory before its first read (which builds the body from the run's projection rows). A
second phase, once the events are delivered, lets the same readers read back to back:
the throughput ceiling, where latency is the queue of 50 clients.

It reports read latency (p50/p99), event delivery lag (the event's store timestamp to
its arrival at a client), reads per second and the server's CPU time per read.

    python bench/api.py            # 1,000 runs, 50 readers, 50 streams
    python bench/api.py --quick    # 50 runs, 5 readers, 5 streams (CI smoke run)

The server's per-key rate limit is raised for the run: 50 clients share one key and
the bench measures latency, not the limiter. Targets: reads p99 <= 50 ms, lag <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PLAN = {
    "run": {"goal": "bench"},
    "tiers": [{"id": "t", "phases": [{"id": "p", "goal": "g", "scope": {"paths": ["a.py"]}}]}],
}


@dataclass(frozen=True)
class Load:
    runs: int
    readers: int
    streams: int
    events: int
    rate: float  # events per second

    @property
    def seconds(self) -> float:
        return self.events / self.rate


FULL = Load(runs=1000, readers=50, streams=50, events=200, rate=20.0)
QUICK = Load(runs=50, readers=5, streams=5, events=20, rate=20.0)
READ_EVERY_S = 0.15
"""A dashboard page re-renders (and re-reads its run) at most this often."""


# -- the server process ----------------------------------------------------------------


def seed(repo: Path, runs: int) -> str:
    """Store ``runs`` runs straight through the store (no git work needed) and a key."""
    from autopack.engine.runtime import Runtime
    from autopack.events import RunCreated
    from autopack.plan import Plan
    from autopack.store.keys import create_key

    rt = Runtime.open(repo)
    plan = Plan.model_validate(PLAN)
    for index in range(runs):
        created = RunCreated(
            plan=plan.model_dump(mode="json"),
            plan_digest=plan.digest(),
            plan_source="bench",
            repo=str(repo),
            base_commit="0" * 40,
            branch=f"autopack/bench-{index}",
        )
        rt.store.create_run(f"bench-{index}", created)
    _, secret = create_key(rt.store.engine, "bench", "read")
    rt.store.close()
    return secret


def serve(repo: Path, port: int, events: int, rate: float) -> None:
    """Serve the app; once ``repo/go`` exists, run ``bench-0`` emits ``events`` events."""
    import uvicorn

    from autopack.api import ApiConfig, create_app
    from autopack.events import ModelCalled

    app = create_app(ApiConfig(repo=repo, executor=False, rate_per_s=1e6, rate_burst=10**6))

    def emit() -> None:
        while not (repo / "go").exists():
            time.sleep(0.01)
        store = app.state.ctx.rt.store
        for index in range(events):
            call = ModelCalled(
                role="builder", model="m", input_tokens=index, output_tokens=1, cost_usd=0.0
            )
            store.append("bench-0", call)
            time.sleep(1 / rate)

    threading.Thread(target=emit, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the client processes --------------------------------------------------------------
#
# One client process cannot generate this load: with httpx, a shared pool checks every
# one of its 100 connections on each request, and even one pool per client costs the
# client more CPU per request than the server spends. On 2 cores that measures the
# client. So the streams live in one process, the readers are split over
# READER_PROCESSES, and each client owns one keep-alive connection spoken with a
# minimal HTTP/1.1 client (a browser's cost, not a Python library's): real requests,
# real responses and real chunked SSE over loopback.

READER_PROCESSES = 2


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, authorised with the bench key."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.headers = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n\r\n"
        self.head = b""

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.writer.close()

    async def request(self, path: str) -> int:
        """Send ``GET path``; returns the status once the head has arrived."""
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.headers}".encode())
        self.head = await self.reader.readuntil(b"\r\n\r\n")
        return int(self.head.split(b" ", 2)[1])

    async def get_json(self, path: str) -> Any:
        status = await self.request(path)
        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", self.head)
        if found is None:
            raise SystemExit(f"GET {path}: no Content-Length")
        body = await self.reader.readexactly(int(found.group(1)))
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The chunks of a chunked response body (one SSE message each, as sent)."""
        while size := int(await self.reader.readline(), 16):
            chunk = await self.reader.readexactly(size + 2)
            yield chunk[:-2]


async def reader(port: int, secret: str, load: Load, until: float, every: float) -> list[float]:
    """Read random runs, one every ``every`` seconds (0: back to back) until ``until``.

    A read's latency counts from when it was due: a late answer delays the next read.
    """
    latencies: list[float] = []
    async with Connection(port, secret) as connection:
        due = time.monotonic() + random.uniform(0, every)
        while due < until:
            await asyncio.sleep(due - time.monotonic())
            run_id = f"bench-{random.randrange(load.runs)}"
            body = await connection.get_json(f"/runs/{run_id}")
            latencies.append((time.monotonic() - due) * 1000)
            if body["run"]["id"] != run_id:
                raise SystemExit(f"asked for {run_id}, got {body['run']['id']}")
            due = due + every if every else time.monotonic()
    return latencies


async def stream(
    connection: Connection, wanted: int, lags: list[float], ready: asyncio.Event
) -> int:
    """Follow bench-0's events from now on; returns how many arrived."""
    if await connection.request("/runs/bench-0/events?after=1") != 200:
        raise SystemExit("the event stream was refused")
    ready.set()
    seen = 0
    async for chunk in connection.chunks():
        for line in chunk.splitlines():
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            sent = datetime.fromisoformat(event["ts"])
            lags.append((datetime.now(UTC) - sent).total_seconds() * 1000)
            seen += 1
            if seen >= wanted:
                return seen
    return seen


def read_load(port: int, secret: str, repo: str, load: Load, readers: int) -> list[list[float]]:
    """A reader process: paced reads while the streams run, then back-to-back reads."""

    async def main() -> list[list[float]]:
        go = Path(repo) / "go"
        while not go.exists():
            await asyncio.sleep(0.01)
        phases = []
        for every, seconds in ((READ_EVERY_S, load.seconds), (0.0, load.seconds / 2)):
            until = time.monotonic() + seconds
            done = await asyncio.gather(
                *(reader(port, secret, load, until, every) for _ in range(readers))
            )
            phases.append([ms for latencies in done for ms in latencies])
        return phases

    return asyncio.run(main())


def stream_load(port: int, secret: str, repo: str, load: Load) -> list[float]:
    """The stream process: opens every stream, then lets the server start emitting."""

    async def main() -> list[float]:
        lags: list[float] = []
        ready = [asyncio.Event() for _ in range(load.streams)]
        async with contextlib.AsyncExitStack() as stack:
            connections = [await stack.enter_async_context(Connection(port, secret)) for _ in ready]
            streams = [
                asyncio.create_task(stream(c, load.events, lags, r))
                for c, r in zip(connections, ready, strict=True)
            ]
            await asyncio.gather(*(r.wait() for r in ready))
            (Path(repo) / "go").touch()
            delivered = await asyncio.wait_for(asyncio.gather(*streams), load.seconds + 60)
        expected = load.events * load.streams
        if sum(delivered) != expected:
            raise SystemExit(f"events lost: {sum(delivered)} of {expected} delivered")
        return lags

    return asyncio.run(main())


@dataclass
class Results:
    paced: list[float]
    flat: list[float]
    lags: list[float]
    cpu_s: tuple[float, float]
    """The server's CPU seconds during the paced phase and during the back-to-back one."""


def drive(port: int, secret: str, repo: Path, load: Load, server: int) -> Results:
    shares = [load.readers // READER_PROCESSES] * READER_PROCESSES
    shares[0] += load.readers - sum(shares)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(shares) + 1, mp_context=context) as pool:
        lags = pool.submit(stream_load, port, secret, str(repo), load)
        reads = [pool.submit(read_load, port, secret, str(repo), load, n) for n in shares]
        cpu = _cpu_per_phase(repo / "go", server, (load.seconds, load.seconds / 2))
        done = [job.result() for job in reads]
        return Results(
            paced=[ms for paced, _ in done for ms in paced],
            flat=[ms for _, flat in done for ms in flat],
            lags=lags.result(),
            cpu_s=cpu,
        )


def _cpu_per_phase(go: Path, pid: int, phases: tuple[float, float]) -> tuple[float, float]:
    """The server's CPU seconds (user + system) in each phase, from ``/proc``."""
    while not go.exists():
        time.sleep(0.01)
    marks = [_cpu_seconds(pid)]
    start = time.monotonic()
    for end in itertools.accumulate(phases):
        time.sleep(max(0.0, start + end - time.monotonic()))
        marks.append(_cpu_seconds(pid))
    return marks[1] - marks[0], marks[2] - marks[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(load: Load, results: Results, load_before: float) -> None:
    print(
        f"\n{load.runs} runs stored; {load.readers} readers; {load.streams} SSE streams; "
        f"{load.events} events at {load.rate:g}/s\n"
    )
    print(f"{'measure':<34}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'target':>10}")
    rows = [
        (f"GET /runs/{{id}}, every {READ_EVERY_S * 1000:g} ms", results.paced, "p99<=50"),
        ("event delivery lag", results.lags, "p99<=100"),
        ("GET /runs/{id}, back to back", results.flat, "-"),
    ]
    for name, values, target in rows:
        print(
            f"{name:<34}{len(values):>7}{statistics.median(values):>9.1f}"
            f"{percentile(values, 0.99):>9.1f}{max(values):>9.1f}{target:>10}"
        )
    print(f"\n{'phase':<34}{'reads/s':>9}{'server CPU ms/read':>20}")
    phases = [
        ("paced reads + SSE", results.paced, load.seconds, results.cpu_s[0]),
        ("back to back", results.flat, load.seconds / 2, results.cpu_s[1]),
    ]
    for name, values, seconds, cpu in phases:
        print(f"{name:<34}{len(values) / seconds:>9.0f}{cpu * 1000 / len(values):>20.2f}")
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(
        f"(uvicorn on {loop} + {http}; machine load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny load for CI smoke runs")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        repo, port, events, rate = args.child
        serve(Path(repo), int(port), int(events), float(rate))
        return
    load = QUICK if args.quick else FULL
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="autopack-bench-api-") as tmp:
        repo = Path(tmp)
        secret = seed(repo, load.runs)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        child = [sys.executable, __file__, "--child", tmp, str(port), str(load.events)]
        server = subprocess.Popen([*child, str(load.rate)])
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_for(url)
            results = drive(port, secret, repo, load, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(load, results, load_before)


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
