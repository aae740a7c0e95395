"""``autopack serve --engine temporal``: runs started over HTTP execute as workflows on
worker processes, and the API, its event stream, approvals, rejections, cancel and
resume work as with the embedded executor."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client, WorkflowExecutionStatus
from typer.testing import CliRunner

from autopack.api import ApiConfig, create_app
from autopack.cli.app import app as cli
from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.engine.temporal import workflow_id
from autopack.engine.temporal_host import redact_url
from autopack.plan import load_plan
from autopack.workspace import git

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from api_helpers import LiveServer, free_port
from test_distributed import APPROVAL_PLAN, APPROVAL_SCRIPT, approval_repo


def temporal_app(
    repo: Path, *, db: str, temporal: str, queue: str, script: Path, repo_url: str | None = None
) -> FastAPI:
    """The app ``autopack serve --engine temporal`` serves (loopback, no keys)."""
    config = ApiConfig(
        repo=repo,
        no_auth=True,
        engine="temporal",
        temporal=temporal,
        db_url=db,
        task_queue=queue,
        repo_url=repo_url,
        model_override=f"scripted:{script}",
    )
    return create_app(config)


def start(url: str, plan_text: str) -> str:
    response = httpx.post(
        f"{url}/runs/start",
        content=plan_text.encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "QUEUED"
    return str(response.json()["run_id"])


def stream_until_finished(url: str, run_id: str, limit_s: float = 240) -> list[dict[str, Any]]:
    """The run's events as the SSE stream delivers them, up to its ``run_finished``."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit_s
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if events[-1]["type"] == "run_finished":
                    return events
            assert time.monotonic() < deadline, f"no run_finished; got {events[-3:]}"
    raise AssertionError("the stream ended before the run did")


def detail(url: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/runs/{run_id}", timeout=30)
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def phase_states(body: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["state"] for tier in body["tiers"] for p in tier["phases"]}


def wait_until(url: str, run_id: str, check: Any, limit_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        body = detail(url, run_id)
        if check(body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never got there: {body['run']['state']}")


def describe_status(temporal: str, run_id: str) -> WorkflowExecutionStatus | None:
    async def describe() -> WorkflowExecutionStatus | None:
        client = await Client.connect(temporal)
        return (await client.get_workflow_handle(workflow_id(run_id)).describe()).status

    return asyncio.run(describe())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--engine", "temporal"], "needs --temporal ADDRESS and --db URL"),
        (["--engine", "temporal", "--temporal", "localhost:7233"], "--db URL"),
        (["--engine", "celery"], "engine must be one of local, temporal"),
    ],
)
def test_serve_refuses_an_engine_it_cannot_run(args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args], env={"AUTOPACK_DB_URL": ""})
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())


def test_serve_names_an_unreachable_cluster_in_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    db = f"sqlite:///{tmp_path / 'autopack.db'}"
    args = ["serve", "--engine", "temporal", "--temporal", f"127.0.0.1:{port}", "--db", db]
    result = CliRunner().invoke(cli, [*args, "--repo", str(tmp_path)])
    assert result.exit_code == 1
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_repo_url_token_never_reaches_an_error_message() -> None:
    url = "https://bob:s3cret-token@git.example.com:8443/team/app.git"
    message = redact_url(f"{url}: fatal: could not read from {url} as bob", url)
    assert "s3cret-token" not in message and "bob" not in message
    assert "https://git.example.com:8443/team/app.git" in message
    assert redact_url("/srv/app.git: gone", "/srv/app.git") == "/srv/app.git: gone"


def terminate(temporal: str, run_id: str) -> None:
    async def kill() -> None:
        client = await Client.connect(temporal)
        await client.get_workflow_handle(workflow_id(run_id)).terminate("test")

    asyncio.run(kill())


@pytest.mark.services
@pytest.mark.slow
def test_a_run_started_over_http_runs_on_two_workers_and_streams_its_phases(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any
) -> None:
    db = postgres.database()
    repo = prepare_demo_repo(tmp_path / "repo")
    _, plan_path, script = demo_files()
    phase_ids = {p.id for tier in load_plan(plan_path).tiers for p in tier.phases}
    workers(2, db=db, task_queue="serve-demo")
    app = temporal_app(repo, db=db, temporal=temporal, queue="serve-demo", script=script)
    with LiveServer(app) as server:
        run_id = start(server.url, plan_path.read_text(encoding="utf-8"))
        events = stream_until_finished(server.url, run_id)
        # The workflow closes just after it records the end.
        body = wait_until(server.url, run_id, lambda b: not b["executing"], limit_s=60)

    assert events[-1]["data"]["state"] == "SUCCEEDED"
    started = next(e for e in events if e["type"] == "run_started")
    assert started["data"]["executor"] == f"temporal:{workflow_id(run_id)}"
    landed = {
        e["data"]["phase_id"]
        for e in events
        if e["type"] == "step_completed" and e["data"]["step"] == "commit"
    }
    begun = {e["data"]["phase_id"] for e in events if e["type"] == "phase_started"}
    assert landed == begun == phase_ids
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    assert body["run"]["state"] == "SUCCEEDED"
    assert phase_states(body) == {pid: "COMPLETE" for pid in phase_ids}
    # The served repository is the remote the workers cloned: the phases landed on it.
    branch = body["run"]["branch"]
    assert len(git.log_commits(repo, "HEAD", branch)) == len(phase_ids)
    assert describe_status(temporal, run_id) is WorkflowExecutionStatus.COMPLETED


@pytest.mark.services
@pytest.mark.slow
def test_approve_cancel_and_resume_over_http_reach_the_workflows(
    tmp_path: Path, temporal: str, postgres: Any, workers: Any
) -> None:
    db = postgres.database()
    remote = approval_repo(tmp_path, "served")
    script = tmp_path / "script.yaml"
    script.write_text(APPROVAL_SCRIPT, encoding="utf-8")
    workers(1, db=db, task_queue="serve-approvals")
    app = temporal_app(
        tmp_path / "served",
        db=db,
        temporal=temporal,
        queue="serve-approvals",
        script=script,
        repo_url=remote,
    )
    with LiveServer(app) as server:
        url = server.url
        runs = {
            name: start(url, APPROVAL_PLAN.replace("run: {", f'run: {{id: "{name}", '))
            for name in ("approved", "cancelled", "terminated")
        }
        for run_id in runs.values():
            waiting = wait_until(
                url, run_id, lambda b: phase_states(b) == {"edit-test": "AWAITING_APPROVAL"}
            )
            assert waiting["run"]["repo"] == remote
            assert waiting["executing"] is True

        approved = httpx.post(
            f"{url}/runs/approved/phases/edit-test/approve", json={"note": "fine"}, timeout=30
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["phase_state"] == "GATING"
        again = httpx.post(f"{url}/runs/approved/phases/edit-test/approve", timeout=30)
        assert again.status_code == 409

        cancelled = httpx.post(
            f"{url}/runs/cancelled/cancel", json={"reason": "not today"}, timeout=30
        )
        assert cancelled.status_code == 202, cancelled.text

        done = wait_until(url, "approved", lambda b: b["run"]["state"] == "SUCCEEDED")
        stopped = wait_until(url, "cancelled", lambda b: b["run"]["state"] == "CANCELLED")
        assert httpx.post(f"{url}/runs/cancelled/cancel", timeout=30).status_code == 409
        assert describe_status(temporal, "cancelled") is WorkflowExecutionStatus.CANCELED

        # Resumed, the cancelled run waits for the same approval: nothing is built again.
        resumed = httpx.post(f"{url}/runs/cancelled/resume", timeout=30)
        assert resumed.status_code == 202, resumed.text
        back = wait_until(
            url,
            "cancelled",
            lambda b: (
                b["run"]["state"] == "RUNNING"
                and b["executing"]
                and phase_states(b) == {"edit-test": "AWAITING_APPROVAL"}
            ),
        )
        assert back["run"]["model_calls"] == stopped["run"]["model_calls"]
        assert httpx.post(f"{url}/runs/cancelled/phases/edit-test/approve", timeout=30).is_success
        finished = wait_until(url, "cancelled", lambda b: b["run"]["state"] == "SUCCEEDED")
        assert finished["run"]["model_calls"] == stopped["run"]["model_calls"]
        assert httpx.post(f"{url}/runs/approved/resume", timeout=30).status_code == 409

        # A workflow terminated behind the API's back leaves its run paused, not alive.
        terminate(temporal, "terminated")
        paused = wait_until(url, "terminated", lambda b: b["run"]["state"] == "PAUSED")
        assert "workflow" in paused["run"]["reason"] and paused["executing"] is False
        assert httpx.post(f"{url}/runs/terminated/resume", timeout=30).status_code == 202
        wait_until(url, "terminated", lambda b: b["executing"] and b["run"]["state"] == "RUNNING")
        rejected = httpx.post(
            f"{url}/runs/terminated/phases/edit-test/reject",
            json={"note": "no", "fail": True},
            timeout=30,
        )
        assert rejected.status_code == 200, rejected.text
        failed = wait_until(url, "terminated", lambda b: b["run"]["state"] == "FAILED")
        phase = httpx.get(f"{url}/runs/approved/phases/edit-test", timeout=30).json()

    assert phase_states(done) == {"edit-test": "COMPLETE"}
    assert phase_states(failed) == {"edit-test": "FAILED"}
    assert phase["approval"] == {
        "note": "fine",
        "by": "no-auth (loopback)",
        "at": phase["approval"]["at"],  # when, from the event
    }
    assert phase["approval"]["at"]
    assert stopped["cancel_requested"] is True
    assert describe_status(temporal, "approved") is WorkflowExecutionStatus.COMPLETED
    head = git.rev_parse(Path(remote), "refs/heads/autopack/approved")
    assert head is not None and head != git.rev_parse(Path(remote), "main")
