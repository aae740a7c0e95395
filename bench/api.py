"""Benchmark: the API under a dashboard-like load on loopback.

A server process (uvicorn, the real app, no embedded executor) serves a store holding
many runs; one run in the server process emits events at a steady rate. A client
process holds concurrent readers polling ``GET /runs/{id}`` for random runs and
concurrent SSE streams on the emitting run. It reports read latency (p50/p99) and
event delivery lag (the event's store timestamp to its arrival at a client).

    python bench/api.py            # 1,000 runs, 50 readers, 50 streams
    python bench/api.py --quick    # 50 runs, 5 readers, 5 streams (CI smoke run)

The server's per-key rate limit is raised for the run: 50 clients share one key and
the bench measures latency, not the limiter. Targets: reads p99 <= 50 ms, lag <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
# One client process cannot generate this load: a shared httpx pool checks every one of
# its 100 connections on each request, and one core of Python parsing 100 connections
# measures the client. So the streams live in one process, the readers are split over
# READER_PROCESSES, and each client owns one keep-alive connection, as a browser would.

READER_PROCESSES = 2


def _clients(url: str, secret: str, count: int) -> list[httpx.AsyncClient]:
    """``count`` clients of one connection each, sharing one TLS context (unused on
    loopback, but httpx builds one per client, and 50 of them stall a process)."""
    tls = ssl.create_default_context()
    return [
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {secret}"},
            limits=httpx.Limits(max_connections=1),
            timeout=60,
            verify=tls,
        )
        for _ in range(count)
    ]


async def reader(client: httpx.AsyncClient, runs: int, until: float, out: list[float]) -> None:
    async with client:
        while time.monotonic() < until:
            run_id = f"bench-{random.randrange(runs)}"
            start = time.perf_counter()
            response = await client.get(f"/runs/{run_id}")
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()


async def stream(
    client: httpx.AsyncClient, wanted: int, lags: list[float], ready: asyncio.Event
) -> int:
    """Follow bench-0's events from now on; returns how many arrived."""
    async with (
        client,
        client.stream("GET", "/runs/bench-0/events", params={"after": 1}) as response,
    ):
        ready.set()
        seen = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            sent = datetime.fromisoformat(event["ts"])
            lags.append((datetime.now(UTC) - sent).total_seconds() * 1000)
            seen += 1
            if seen >= wanted:
                return seen
    return seen


def read_load(url: str, secret: str, repo: str, load: Load, readers: int) -> list[float]:
    """A reader process: once the streams are up, ``readers`` clients read back to back."""
    reads: list[float] = []

    async def main() -> None:
        clients = _clients(url, secret, readers)
        go = Path(repo) / "go"
        while not go.exists():
            await asyncio.sleep(0.01)
        until = time.monotonic() + load.seconds
        await asyncio.gather(*(reader(c, load.runs, until, reads) for c in clients))

    asyncio.run(main())
    return reads


def stream_load(url: str, secret: str, repo: str, load: Load) -> list[float]:
    """The stream process: opens every stream, then lets the server start emitting."""

    async def main() -> list[float]:
        lags: list[float] = []
        ready = [asyncio.Event() for _ in range(load.streams)]
        clients = _clients(url, secret, load.streams)
        streams = [
            asyncio.create_task(stream(c, load.events, lags, r))
            for c, r in zip(clients, ready, strict=True)
        ]
        await asyncio.gather(*(r.wait() for r in ready))
        (Path(repo) / "go").touch()
        delivered = await asyncio.wait_for(asyncio.gather(*streams), load.seconds + 60)
        expected = load.events * load.streams
        if sum(delivered) != expected:
            raise SystemExit(f"events lost: {sum(delivered)} of {expected} delivered")
        return lags

    return asyncio.run(main())


def drive(url: str, secret: str, repo: Path, load: Load) -> dict[str, list[float]]:
    shares = [load.readers // READER_PROCESSES] * READER_PROCESSES
    shares[0] += load.readers - sum(shares)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(shares) + 1, mp_context=context) as pool:
        lags = pool.submit(stream_load, url, secret, str(repo), load)
        reads = [pool.submit(read_load, url, secret, str(repo), load, n) for n in shares]
        got = {"reads": [ms for job in reads for ms in job.result()], "lags": lags.result()}
        return got


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(load: Load, results: dict[str, list[float]]) -> None:
    print(
        f"\n{load.runs} runs stored; {load.readers} readers; {load.streams} SSE streams; "
        f"{load.events} events at {load.rate:g}/s\n"
    )
    print(f"{'measure':<26}{'n':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'target':>12}")
    rows = [
        ("GET /runs/{id} latency", results["reads"], "p99<=50"),
        ("event delivery lag", results["lags"], "p99<=100"),
    ]
    for name, values, target in rows:
        print(
            f"{name:<26}{len(values):>8}{statistics.median(values):>10.1f}"
            f"{percentile(values, 0.99):>10.1f}{max(values):>10.1f}{target:>12}"
        )
    seconds = load.seconds
    print(f"\nreads per second: {len(results['reads']) / seconds:.0f}")


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
            results = drive(url, secret, repo, load)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(load, results)


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
