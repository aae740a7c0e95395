"""The event stream over a real server: reconnecting with Last-Event-ID loses nothing and
repeats nothing, even while the run keeps appending events."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import LiveServer, make_repo, plan

from autopack.api import ApiConfig, create_app
from autopack.engine.create import create_run
from autopack.events import ModelCalled
from autopack.plan import Plan, parse_plan_text
from autopack.store.keys import create_key

pytestmark = pytest.mark.services
TOTAL = 300


def read_events(url: str, headers: dict[str, str], stop_after: int) -> list[dict[str, object]]:
    """Read SSE messages until ``stop_after`` events arrived, then drop the connection."""
    events: list[dict[str, object]] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        sse_id = None
        for line in response.iter_lines():
            if line.startswith("id: "):
                sse_id = int(line[4:])
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["seq"] == sse_id
                events.append(event)
                if len(events) >= stop_after:
                    break
    return events


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    app = create_app(ApiConfig(repo=repo, executor=False))
    rt = app.state.ctx.rt
    parsed: Plan = parse_plan_text(json.dumps(plan("live")))
    create_run(rt, parsed, plan_source="test")
    _, secret = create_key(rt.store.engine, "watcher", "read")
    headers = {"Authorization": f"Bearer {secret}"}

    def emit() -> None:
        for index in range(TOTAL - 1):
            call = ModelCalled(
                role="builder", model="m", input_tokens=index, output_tokens=1, cost_usd=0.0
            )
            rt.store.append("live", call)
            if index % 25 == 0:
                time.sleep(0.01)

    with LiveServer(app) as server:
        url = f"{server.url}/runs/live/events"
        emitter = threading.Thread(target=emit)
        emitter.start()
        received = read_events(url, headers, stop_after=40)
        while received[-1]["seq"] != TOTAL:
            resume = {**headers, "Last-Event-ID": str(received[-1]["seq"])}
            remaining = TOTAL - int(received[-1]["seq"])  # type: ignore[call-overload]
            received += read_events(url, resume, stop_after=min(70, remaining))
        emitter.join()
        with_after = read_events(f"{url}?after={TOTAL - 5}", headers, stop_after=5)
    seqs = [int(e["seq"]) for e in received]  # type: ignore[call-overload]
    assert seqs == list(range(1, TOTAL + 1))
    stored = rt.store.events("live")
    assert [e["data"] for e in received] == [e.data for e in stored]
    assert [e["seq"] for e in with_after] == list(range(TOTAL - 4, TOTAL + 1))


def test_a_stream_of_an_unknown_run_is_404_json(tmp_path: Path) -> None:
    app = create_app(ApiConfig(repo=make_repo(tmp_path / "repo"), executor=False))
    _, secret = create_key(app.state.ctx.rt.store.engine, "watcher", "read")
    with LiveServer(app) as server:
        response = httpx.get(
            f"{server.url}/runs/ghost/events", headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
