"""Events appended by another process (an executor or worker beside the server) reach
every open stream of the run, each exactly once, in order, without a reconnect."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
from api_helpers import LiveServer, make_repo, plan
from fastapi import FastAPI

from autopack.api import ApiConfig, create_app
from autopack.engine.create import create_run
from autopack.events import ModelCalled
from autopack.plan import parse_plan_text
from autopack.store import SqlStore, Store
from autopack.store.keys import create_key

STREAMS = 3
APPENDED = 30


def follow(url: str, headers: dict[str, str], wanted: int, out: list[int]) -> None:
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                out.append(int(json.loads(line[6:])["seq"]))
                if len(out) >= wanted:
                    return


def served_with_another_writer(tmp_path: Path) -> tuple[FastAPI, dict[str, str], Store]:
    """An app with one stored run "far", a read key's headers, and a second writer."""
    repo = make_repo(tmp_path / "repo")
    app = create_app(ApiConfig(repo=repo, executor=False))
    rt = app.state.ctx.rt
    create_run(rt, parse_plan_text(json.dumps(plan("far"))), plan_source="test")
    _, secret = create_key(rt.store.engine, "watcher", "read")
    return app, {"Authorization": f"Bearer {secret}"}, SqlStore(rt.store.url)


def test_events_appended_elsewhere_reach_every_stream_once(tmp_path: Path) -> None:
    # The other writer: this process's hub never hears of its appends.
    app, headers, elsewhere = served_with_another_writer(tmp_path)
    received: list[list[int]] = [[] for _ in range(STREAMS)]
    with LiveServer(app) as server:
        url = f"{server.url}/runs/far/events?after=1"
        readers = [
            threading.Thread(target=follow, args=(url, headers, APPENDED, out), daemon=True)
            for out in received
        ]
        for thread in readers:
            thread.start()
        while app.state.hub.listeners < STREAMS:
            threading.Event().wait(0.02)
        for index in range(APPENDED):
            call = ModelCalled(
                role="builder", model="m", input_tokens=index, output_tokens=1, cost_usd=0.0
            )
            elsewhere.append("far", call)
        for thread in readers:
            thread.join(timeout=30)
    elsewhere.close()
    assert received == [list(range(2, APPENDED + 2))] * STREAMS


def test_the_all_runs_stream_notices_runs_moved_by_another_writer(tmp_path: Path) -> None:
    """The runs list stays live when a worker in another process appends (serve on Temporal)."""
    app, headers, elsewhere = served_with_another_writer(tmp_path)
    noticed: list[int] = []
    with LiveServer(app) as server:
        reader = threading.Thread(
            target=follow, args=(f"{server.url}/events", headers, 3, noticed), daemon=True
        )
        reader.start()
        while app.state.hub.listeners < 1:
            threading.Event().wait(0.02)
        threading.Event().wait(0.5)  # the tail has taken its first look
        for index in range(3):
            call = ModelCalled(
                role="builder", model="m", input_tokens=index, output_tokens=1, cost_usd=0.0
            )
            elsewhere.append("far", call)
        reader.join(timeout=30)
    elsewhere.close()
    assert noticed == [2, 3, 4]
