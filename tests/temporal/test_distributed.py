"""Runs on Temporal with worker processes against PostgreSQL: the same result as the
local executor, a killed worker's step retried on another, approvals by signal,
cancellation, approval timeouts by durable timer, and replayable histories."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Replayer

from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.config import load_settings
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.engine.temporal import (
    RunInput,
    RunWorkflow,
    Verdict,
    create_distributed_run,
    run_input,
    sandbox_runner,
    start_run,
)
from autopack.engine.worker import RepoCache
from autopack.plan import load_plan, parse_plan_text
from autopack.states import PhaseState, RunState
from autopack.store import SqlStore, Store
from autopack.workspace import git

pytestmark = [pytest.mark.services, pytest.mark.slow]


def trees(store: Store, run_id: str) -> dict[str, str]:
    view = store.view(run_id)
    return {pid: str(p.steps.get("commit", {}).get("tree")) for pid, p in view.phases.items()}


@pytest.fixture(scope="module")
def local_trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The demo on the local executor: the reference every engine must match."""
    repo = prepare_demo_repo(tmp_path_factory.mktemp("local") / "repo")
    _, plan_path, script = demo_files()
    rt = Runtime.open(repo, model_override=f"scripted:{script}")
    run_id = create_run(rt, load_plan(plan_path), plan_source=str(plan_path))
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    return trees(rt.store, run_id)


def bare_demo(tmp_path: Path) -> str:
    origin = prepare_demo_repo(tmp_path / "origin")
    git.git(tmp_path, "clone", "-q", "--bare", str(origin), str(tmp_path / "remote.git"))
    return str(tmp_path / "remote.git")


def slow_script(tmp_path: Path, latency: float) -> Path:
    data = yaml.safe_load(demo_files()[2].read_text(encoding="utf-8"))
    data["latency_seconds"] = latency
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def demo_on_workers(
    tmp_path: Path, postgres: Any, workers: Any, count: int, queue: str, script: Path | None = None
) -> tuple[Store, str, str, list[Any]]:
    """The demo stored as a distributed run on a bare remote, and ``count`` workers.

    Returns the store, the run id, the remote's URL and the worker processes.
    """
    db = postgres.database()
    url = bare_demo(tmp_path)
    _, plan_path, demo_script = demo_files()
    script = script or demo_script
    store = SqlStore(db)
    run_id = create_distributed_run(
        store,
        load_plan(plan_path),
        url,
        RepoCache(tmp_path / "submit"),
        plan_source=str(plan_path),
        model_override=f"scripted:{script}",
    )
    return store, run_id, url, workers(count, db=db, task_queue=queue)


async def wait_result(handle: WorkflowHandle[Any, str], timeout: float = 240) -> str:
    return await asyncio.wait_for(handle.result(), timeout)


def test_demo_on_two_workers_matches_local_and_replays(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any, local_trees: dict[str, str]
) -> None:
    store, run_id, url, _ = demo_on_workers(tmp_path, postgres, workers, 2, "demo")

    async def main() -> None:
        client = await Client.connect(temporal)
        spec = run_input(store, run_id, load_settings(Path(url)), heartbeat_timeout_s=5)
        handle = await start_run(client, spec, task_queue="demo")
        assert await wait_result(handle) == "SUCCEEDED"
        assert (await handle.query(RunWorkflow.progress))["state"] == "SUCCEEDED"
        replayer = Replayer(workflows=[RunWorkflow], workflow_runner=sandbox_runner())
        await replayer.replay_workflow(await handle.fetch_history())

    asyncio.run(main())
    assert trees(store, run_id) == local_trees
    view = store.view(run_id)
    head = git.rev_parse(Path(url), f"refs/heads/{view.branch}")
    assert head == view.phases["cli"].commit  # every phase landed on the remote, in order
    assert len(git.log_commits(Path(url), view.base_commit, view.branch)) == 3


def test_killed_worker_step_is_retried_elsewhere(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any, local_trees: dict[str, str]
) -> None:
    slow = slow_script(tmp_path, 1.5)
    store, run_id, url, started = demo_on_workers(tmp_path, postgres, workers, 2, "kill", slow)
    procs = {p.pid: p for p in started}

    async def main() -> int:
        client = await Client.connect(temporal)
        spec = run_input(store, run_id, load_settings(Path(url)), heartbeat_timeout_s=3)
        handle = await start_run(client, spec, task_queue="kill")
        victim = await kill_during_build(handle, store, run_id, procs)
        assert await wait_result(handle) == "SUCCEEDED"
        replayer = Replayer(workflows=[RunWorkflow], workflow_runner=sandbox_runner())
        await replayer.replay_workflow(await handle.fetch_history())
        return victim

    victim = asyncio.run(main())
    assert procs[victim].poll() == -signal.SIGKILL
    assert trees(store, run_id) == local_trees


async def kill_during_build(
    handle: WorkflowHandle[Any, str], store: Store, run_id: str, procs: dict[int, Any]
) -> int:
    """SIGKILL the worker carrying out the first phase's build while it waits on the model."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phase = store.view(run_id).phases["word-frequencies"]
        if phase.step == "build":
            for pending in (await handle.describe()).raw_description.pending_activities:
                pid = int(pending.last_worker_identity.split("@")[0] or 0)
                if pid in procs:
                    os.kill(pid, signal.SIGKILL)
                    return pid
        await asyncio.sleep(0.2)
    raise AssertionError("the build step never started")


APPROVAL_PLAN = """\
run: {goal: "edit an existing test, which asks a person"}
tiers:
  - id: one
    phases:
      - {id: edit-test, goal: tighten the test, scope: {paths: [tests/test_a.py]},
         tests: {command: "true"}}
"""

APPROVAL_SCRIPT = """\
version: 1
replies:
  "*":
    builder:
      - |
        tests/test_a.py
        <<<<<<< SEARCH
        assert 1
        =======
        assert 1 == 1
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""


def approval_repo(tmp_path: Path, name: str) -> str:
    work = tmp_path / name
    (work / "tests").mkdir(parents=True)
    (work / "tests" / "test_a.py").write_text("def test_a():\n    assert 1\n")
    git.git(work, "init", "-q", "-b", "main")
    git.git(work, "add", "-A")
    git.git(work, "commit", "-q", "-m", "init")
    git.git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / f"{name}.git"))
    return str(tmp_path / f"{name}.git")


def test_approve_by_signal_cancel_and_approval_timeout(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any
) -> None:
    db = postgres.database()
    store = SqlStore(db)
    script = tmp_path / "script.yaml"
    script.write_text(APPROVAL_SCRIPT, encoding="utf-8")
    plan = parse_plan_text(APPROVAL_PLAN)
    runs = {
        name: create_distributed_run(
            store,
            plan,
            approval_repo(tmp_path, name),
            RepoCache(tmp_path / "submit"),
            plan_source="plan.yaml",
            model_override=f"scripted:{script}",
        )
        for name in ("approved", "cancelled", "timed-out")
    }
    workers(2, db=db, task_queue="approvals")

    async def main() -> dict[str, Any]:
        client = await Client.connect(temporal)
        handles = {}
        for name, run_id in runs.items():
            timeout = 2.0 if name == "timed-out" else None
            spec = RunInput(run_id, approval_timeout_s=timeout, heartbeat_timeout_s=5)
            handles[name] = await start_run(client, spec, task_queue="approvals")
        for name in ("approved", "cancelled"):
            await wait_for_state(handles[name], PhaseState.AWAITING_APPROVAL)
        await handles["approved"].signal(
            RunWorkflow.verdict, Verdict("edit-test", 1, True, by="me")
        )
        await handles["cancelled"].cancel()
        results: dict[str, Any] = {}
        for name, handle in handles.items():
            try:
                results[name] = await wait_result(handle, 120)
            except WorkflowFailureError as exc:
                results[name] = type(exc.cause).__name__
        return results

    results = asyncio.run(main())
    assert results == {
        "approved": "SUCCEEDED",
        "cancelled": "CancelledError",
        "timed-out": "FAILED",
    }
    approval = store.view(runs["approved"]).phases["edit-test"].approval
    assert approval is not None and approval["at"]  # when, from the event
    assert approval == {"note": "", "by": "me", "at": approval["at"]}
    assert store.view(runs["cancelled"]).state is RunState.CANCELLED
    timed_out = store.view(runs["timed-out"]).phases["edit-test"]
    assert timed_out.state is PhaseState.FAILED
    assert "no approval within 2 s" in timed_out.reason


async def wait_for_state(handle: WorkflowHandle[Any, str], state: PhaseState) -> None:
    for _ in range(600):
        phases = (await handle.query(RunWorkflow.progress))["phases"]
        if phases and all(p["state"] == state.value for p in phases.values()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the run never reached {state.value}")


def test_tidy_on_finish_lands_the_docs_commit_on_the_remote(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finish activity tidies in a worker's clone and pushes the docs commit."""
    monkeypatch.setenv("AUTOPACK_TIDY_ON_FINISH", "1")
    store, run_id, url, _ = demo_on_workers(tmp_path, postgres, workers, 1, "tidy")

    async def main() -> None:
        client = await Client.connect(temporal)
        spec = run_input(store, run_id, load_settings(Path(url)), heartbeat_timeout_s=5)
        handle = await start_run(client, spec, task_queue="tidy")
        assert await wait_result(handle) == "SUCCEEDED"

    asyncio.run(main())
    view = store.view(run_id)
    remote = Path(url)
    head = git.rev_parse(remote, f"refs/heads/{view.branch}")
    assert head != view.phases["cli"].commit  # one more commit after the last phase
    subject = git.git(remote, "log", "-1", "--format=%s", view.branch)
    assert subject.startswith("docs: tidy ledgers (BUILD-001")
    parent = git.git(remote, "rev-parse", f"{view.branch}~1")
    assert parent == view.phases["cli"].commit
    assert "BUILD-001" in git.git(remote, "show", f"{view.branch}:docs/BUILD_HISTORY.md")
