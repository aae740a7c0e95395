"""Benchmark: Autopack's MCP server next to its HTTP API, on the same questions.

A repository with 10,000 ledger entries (builds, debug entries, decisions) indexed in
the memory, and 100 stored runs. One server process serves the API and, at ``/mcp``,
the MCP server over Streamable HTTP (the real app, one key); ``autopack mcp`` serves
MCP over stdio in another process. One client asks the same sequence of questions
through each, one at a time:

- ``memory_search``: a hybrid search (``k`` = 5) for one of 40 queries, as
  ``GET /memory/search`` and as the MCP tool over HTTP and over stdio;
- ``run_status``: one of the stored runs, as ``GET /runs/{id}`` and as the MCP tool.

Latency is the client's wall time per call, the SDK client's own work included (what an
agent waits for). The corpus vectors are random unit vectors (seeded): scoring 10,000
of them costs what it costs for real ones, and embedding 10,000 texts would take the
setup ten minutes on 2 cores (recall is ``bench/memory.py``'s subject); every query is
embedded for real. Target: each MCP p95 within 20 ms of the API's.

    python bench/mcp_latency.py            # 10,000 entries, 200 calls per operation and transport
    python bench/mcp_latency.py --quick    # 300 entries, 20 runs, 12 calls (CI smoke run)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx

if TYPE_CHECKING:
    from mcp import Client

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path[:] = [str(SRC), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
"""This checkout's package first; the bench folder off the path (a bench script named
like a package would shadow it: DBG-049)."""
COMPONENTS = [
    "scheduler", "billing", "ingest", "auth", "search", "exporter", "cache", "webhooks",
    "reports", "uploader", "notifier", "planner", "ledger", "gateway", "importer", "queue",
]  # fmt: skip
FAILURES = [
    ("connection pool exhausted", "raise the pool size to the number of workers"),
    ("timezone offset lost on parse", "parse timestamps as aware datetimes"),
    ("flaky test on ordering of a set", "sort before comparing"),
    ("migration left a nullable column", "backfill, then add the constraint"),
    ("retry storm after a 503", "exponential backoff with jitter"),
    ("unicode filename crashes the exporter", "encode names with surrogateescape"),
    ("stale cache after deploy", "key the cache by the build hash"),
    ("deadlock between two writers", "take the locks in one global order"),
]
PLAN = {
    "run": {"goal": "bench"},
    "tiers": [{"id": "t", "phases": [{"id": "p", "goal": "g", "scope": {"paths": ["a.py"]}}]}],
}
RUNS, QUICK_RUNS = 100, 20
WARM = 3
"""Untimed calls per operation before the timed ones (the model's first load, caches)."""


# -- the repository -------------------------------------------------------------------


def build_repo(repo: Path, entries: int, runs: int) -> str:
    """A git repository with ``entries`` ledger entries, their memory index and ``runs``
    stored runs; returns a read key's secret."""
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=repo, check=True
        )
    write_ledgers(repo, entries)
    index_memory(repo)
    return seed_runs(repo, runs)


def write_ledgers(repo: Path, entries: int) -> None:
    from autopack.ledger.entries import Ledger, render_ledger
    from autopack.ledger.tidy import ledger_path

    rng = random.Random(7)
    ledgers = {kind: Ledger.empty(kind) for kind in ("build", "debug", "decision")}
    for n in range(entries):
        component = rng.choice(COMPONENTS)
        failure, fix = rng.choice(FAILURES)
        date = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}"
        if n % 10 < 6:
            ledgers["build"].append(
                date,
                f"{component}: {fix} (run {n})",
                {
                    "Status": "SUCCEEDED",
                    "Changed": f"src/{component}/core.py, tests/test_{component}.py",
                    "Verified": f"tests passing {n % 90} -> {n % 90 + 2}",
                    "Run": f"run-{n}",
                },
            )
        elif n % 10 < 9:
            ledgers["debug"].append(
                date,
                f"{component}: {failure}",
                {
                    "Symptom": f"{component} fails: {failure}",
                    "Signature": f"{component}Error: {failure}",
                    "Root cause": f"the {component} code assumed the opposite of: {failure}",
                    "Fix": fix,
                    "Verified": "the failing test passes; no test regressed",
                },
            )
        else:
            ledgers["decision"].append(
                date,
                f"{component} keeps its own {rng.choice(['queue', 'pool', 'cache', 'schema'])}",
                {
                    "Context": f"{component} met {failure}",
                    "Decision": fix,
                    "Rationale": "simplest change that removes the failure class",
                    "Alternatives": "a shared service (more moving parts)",
                },
            )
    for kind, ledger in ledgers.items():
        path = ledger_path(repo, kind)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_ledger(ledger), encoding="utf-8")


def index_memory(repo: Path) -> None:
    """The keyword index from the real documents; random unit vectors for the dense side."""
    import numpy as np

    from autopack.memory.documents import repo_documents
    from autopack.memory.service import MemoryService

    service = MemoryService.for_repo(repo)
    if service.vectors is None or service.embedder is None:
        raise SystemExit("the memory extra is not installed (pip install 'autopack[memory]')")
    docs = repo_documents(repo, repo.name)
    service.keyword.upsert(docs)
    vectors = np.random.default_rng(7).normal(size=(len(docs), service.embedder.dim))
    service.vectors.upsert([d.id for d in docs], vectors.astype(np.float32))
    service.keyword.db.close()


def seed_runs(repo: Path, runs: int) -> str:
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


# -- the servers ----------------------------------------------------------------------


def serve(repo: Path, port: int) -> None:
    """The API with ``/mcp``, as ``autopack serve`` builds it; the per-key rate limit is
    raised (the bench measures latency, not the limiter)."""
    import uvicorn

    from autopack.api import ApiConfig, create_app

    app = create_app(ApiConfig(repo=repo, executor=False, rate_per_s=1e6, rate_burst=10**6))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


# -- the clients ----------------------------------------------------------------------

Call = Callable[[str, dict[str, Any]], Awaitable[None]]


async def timed(call: Call, name: str, args: list[dict[str, Any]], warm: int) -> list[float]:
    """Milliseconds per call over ``args``, after ``warm`` untimed calls."""
    for arguments in args[:warm]:
        await call(name, arguments)
    times = []
    for arguments in args:
        start = time.perf_counter()
        await call(name, arguments)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def over_api(url: str, secret: str, work: dict[str, list[dict[str, Any]]]) -> Any:
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:

        async def call(name: str, arguments: dict[str, Any]) -> None:
            if name == "memory_search":
                params = {"q": arguments["query"], "k": arguments["k"]}
                response = await http.get("/memory/search", params=params)
                hits = response.json()["hits"]
                if response.status_code != 200 or not hits:
                    raise SystemExit(f"API memory search: {response.status_code}")
            else:
                response = await http.get(f"/runs/{arguments['run_id']}")
                if response.json()["run"]["id"] != arguments["run_id"]:
                    raise SystemExit("API run status: another run")

        return {name: await timed(call, name, args, WARM) for name, args in work.items()}


async def over_mcp(client: Client, work: dict[str, list[dict[str, Any]]]) -> Any:
    async def call(name: str, arguments: dict[str, Any]) -> None:
        result = await client.call_tool(name, arguments)
        content = result.structured_content or {}
        if result.is_error or not (content.get("hits") or content.get("run")):
            raise SystemExit(f"MCP {name}: {result.content}")

    return {name: await timed(call, name, args, WARM) for name, args in work.items()}


async def over_mcp_http(url: str, secret: str, work: dict[str, list[dict[str, Any]]]) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await over_mcp(client, work)


async def over_mcp_stdio(repo: Path, work: dict[str, list[dict[str, Any]]]) -> Any:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = {"PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = [*["-m", "autopack", "mcp", "--repo", str(repo), "--no-executor"]]
    params = StdioServerParameters(command=sys.executable, args=command, env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        return await over_mcp(client, work)


def questions(calls: int, runs: int) -> dict[str, list[dict[str, Any]]]:
    """The same calls, in the same order, for every transport."""
    rng = random.Random(11)
    queries = [f"{rng.choice(COMPONENTS)} {failure}" for failure, _ in FAILURES for _ in range(5)]
    return {
        "memory_search": [{"query": rng.choice(queries), "k": 5} for _ in range(calls)],
        "run_status": [{"run_id": f"bench-{rng.randrange(runs)}"} for _ in range(calls)],
    }


def p50_p95(times: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return cuts[49], cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 entries, 12 calls")
    options = parser.parse_args()
    entries, calls = (300, 12) if options.quick else (10_000, 200)
    runs = QUICK_RUNS if options.quick else RUNS
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        started = time.monotonic()
        secret = build_repo(repo, entries, runs)
        setup_s = time.monotonic() - started
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(repo, port))
        server.start()
        try:
            wait_healthy(url)
            work = questions(calls, runs)
            results = {
                "HTTP API": anyio.run(over_api, url, secret, work),
                "MCP HTTP": anyio.run(over_mcp_http, url, secret, work),
                "MCP stdio": anyio.run(over_mcp_stdio, repo, work),
            }
        finally:
            server.terminate()
            server.join(10)
    print(
        f"{entries:,} ledger entries, {runs} runs; {calls} calls per operation and transport,"
        f" one at a time (setup {setup_s:.0f} s; {os.cpu_count()} cores)"
    )
    print()
    print(f"{'operation':<14} | {'transport':<10} | {'p50 ms':>7} | {'p95 ms':>7} | vs API p95")
    for name in work:
        api_p95 = p50_p95(results["HTTP API"][name])[1]
        for transport, figures in results.items():
            p50, p95 = p50_p95(figures[name])
            delta = "" if transport == "HTTP API" else f"{p95 - api_p95:+.1f} ms"
            print(f"{name:<14} | {transport:<10} | {p50:>7.1f} | {p95:>7.1f} | {delta}")


if __name__ == "__main__":
    main()
