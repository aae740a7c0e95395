"""Parallel phases on Temporal: they work at once on several workers, queue for the gate
(the proofs form one chain), land in plan order, and re-land onto the moved branch from
the merge, exactly as on the local executor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.engine.temporal import create_distributed_run, run_input, start_run
from autopack.engine.worker import RepoCache
from autopack.plan import parse_plan_text
from autopack.states import RunState
from autopack.store import SqlStore, Store
from autopack.workspace import git

pytestmark = [pytest.mark.services, pytest.mark.slow]

NAMES = ["p1", "p2", "p3"]
PLAN = "run: {goal: three at once}\ntiers:\n  - id: only\n    phases:\n" + "".join(
    f"      - {{id: {n}, goal: bump {n}, scope: {{paths: [{n}.py]}}, tests: {{command: 'true'}}}}\n"
    for n in NAMES
)
SCRIPT = "version: 1\nreplies:\n" + "".join(
    f"  {n}:\n    builder:\n      - |\n        {n}.py\n        <<<<<<< SEARCH\n"
    f"        {n.upper()} = 0\n        =======\n        {n.upper()} = 1\n"
    "        >>>>>>> REPLACE\n"
    "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
    for n in NAMES
)


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for n in NAMES:
        (path / f"{n}.py").write_text(f"{n.upper()} = 0\n")
    (path / "autopack.toml").write_text("max_parallel = 3\n")
    git.git(path, "init", "-q", "-b", "main")
    git.git(path, "add", "-A")
    git.git(path, "commit", "-q", "-m", "start")
    return path


def landed(store: Store, run_id: str) -> dict[str, tuple[str, int]]:
    """Each phase's landed tree and how many attempts it took."""
    view = store.view(run_id)
    return {
        pid: (str(p.steps["commit"]["tree"]), p.attempt - p.attempt_floor)
        for pid, p in view.phases.items()
    }


def test_parallel_phases_on_two_workers_land_like_the_local_executor(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    plan = parse_plan_text(PLAN)
    rt = Runtime.open(make_repo(tmp_path / "local"), model_override=f"scripted:{script}")
    local_run = create_run(rt, plan, plan_source="plan.yaml")
    assert LocalExecutor(rt).execute(local_run) is RunState.SUCCEEDED

    origin = make_repo(tmp_path / "origin")
    git.git(tmp_path, "clone", "-q", "--bare", str(origin), str(tmp_path / "remote.git"))
    url = str(tmp_path / "remote.git")
    db = postgres.database()
    store = SqlStore(db)
    run_id = create_distributed_run(
        store,
        plan,
        url,
        RepoCache(tmp_path / "submit"),
        plan_source="plan.yaml",
        max_parallel=3,
        model_override=f"scripted:{script}",
    )
    workers(2, db=db, task_queue="parallel")

    async def main() -> str:
        client = await Client.connect(temporal)
        spec = run_input(store, run_id, rt.settings, heartbeat_timeout_s=5)
        handle = await start_run(client, spec, task_queue="parallel")
        return await asyncio.wait_for(handle.result(), 240)

    assert asyncio.run(main()) == "SUCCEEDED"
    assert landed(store, run_id) == landed(rt.store, local_run)
    events = store.events(run_id)
    assert any(e.type == "phase_started" and e.data.get("rebase_tree") for e in events)
    view = store.view(run_id)
    commits = git.log_commits(Path(url), view.base_commit, view.branch)
    assert [git.trailers(Path(url), c)["Autopack-Phase"] for c in commits] == NAMES
