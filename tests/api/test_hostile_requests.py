"""Hostile requests over a real server: a plan that takes seconds to parse does not stop
the event loop, an oversized body is refused while it streams, a hostile plan is a 422
naming line and field, and a malformed ``Last-Event-ID`` is a clear 400."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from api_helpers import LiveServer, make_repo, plan

from autopack.api import ApiConfig, create_app, runs
from autopack.engine.create import create_run
from autopack.plan import parse_plan_text
from autopack.store.keys import create_key

PHASE = "      - id: p{n}\n        goal: Change module {n}\n        scope: {{paths: [m{n}.py]}}\n"
BIG_PLAN = "run: {goal: Many phases}\ntiers:\n  - id: t\n    phases:\n" + "".join(
    PHASE.format(n=n) for n in range(5000)
)


@pytest.fixture
def served(tmp_path: Path) -> tuple[LiveServer, dict[str, str], object]:
    app = create_app(ApiConfig(repo=make_repo(tmp_path / "repo"), executor=False))
    _, secret = create_key(app.state.ctx.rt.store.engine, "operator", "operate")
    return LiveServer(app), {"Authorization": f"Bearer {secret}"}, app


def test_a_large_plan_is_parsed_off_the_event_loop(
    served: tuple[LiveServer, dict[str, str], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the plan is being parsed (held there until a GET has answered), the server
    answers other requests: the parse runs in a worker thread, not on the event loop."""
    live, headers, app = served
    assert 250_000 < len(BIG_PLAN.encode()) < runs.PLAN_BYTES_CAP
    parsing, answered = threading.Event(), threading.Event()

    def held_parse(text: str, source: str) -> object:
        parsing.set()
        answered.wait(60)
        return parse_plan_text(text, source)

    monkeypatch.setattr(runs, "parse_plan_text", held_parse)
    replies: list[httpx.Response] = []
    with live as server:

        def submit() -> None:
            replies.append(
                httpx.post(
                    f"{server.url}/runs/start", content=BIG_PLAN, headers=headers, timeout=120
                )
            )

        poster = threading.Thread(target=submit)
        poster.start()
        assert parsing.wait(60)
        health = httpx.get(f"{server.url}/health", timeout=30)
        answered.set()
        poster.join(120)
    assert health.status_code == 200
    (reply,) = replies
    assert reply.status_code == 422
    (issue,) = reply.json()["error"]["details"]
    assert issue["file"] == "request" and issue["field"] == "tiers"
    assert "5000 phases; a plan may have at most 500" in issue["message"]
    assert app.state.ctx.rt.store.list_runs() == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('a: &a ["lol","lol"]\nb: [*a,*a]\n', 1, "a", "anchors and aliases"),
        (
            "run: {goal: g}\ntiers:\n  - id: t\n    phases:\n      - id: p\n        goal: g\n"
            "        scope: {paths: [a.py]}\n        scope: {paths: ['**']}\n",
            8,
            "tiers[0].phases[0].scope",
            "repeats",
        ),
        ("run: " + "[" * 2000 + "]" * 2000, 1, "run" + "[0]" * 31, "deeper than 32"),
    ],
)
def test_hostile_plans_are_a_located_422(
    served: tuple[LiveServer, dict[str, str], object],
    text: str,
    line: int,
    field: str,
    words: str,
) -> None:
    live, headers, _ = served
    with live as server:
        reply = httpx.post(f"{server.url}/runs/start", content=text, headers=headers, timeout=60)
    assert reply.status_code == 422
    (issue,) = reply.json()["error"]["details"]
    assert (issue["line"], issue["field"]) == (line, field)
    assert words in issue["message"]


def _read_reply(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_an_oversized_body_is_refused_while_it_streams(
    served: tuple[LiveServer, dict[str, str], object],
) -> None:
    """The body is sent chunked, a little over the cap, and never finished: a server that
    buffered it whole before checking would wait for the rest; this one answers 413."""
    live, headers, _ = served
    with live as server:
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        with socket.create_connection((host, port)) as sock:
            head = (
                f"POST /runs/start HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {headers['Authorization']}\r\n"
                "Content-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head.encode())
            chunk = b"#" * 65536
            for _ in range(runs.PLAN_BYTES_CAP // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            reply = _read_reply(sock)
        declared = httpx.post(
            f"{server.url}/runs/start",
            content=b"#" * (runs.PLAN_BYTES_CAP + 1),
            headers=headers,
            timeout=60,
        )
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "too_large"


@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 5), "-1", "abc", "1e3", "", "٣"])
def test_a_malformed_last_event_id_is_a_clear_400(
    served: tuple[LiveServer, dict[str, str], object], value: str
) -> None:
    live, headers, app = served
    rt = app.state.ctx.rt  # type: ignore[attr-defined]
    create_run(rt, parse_plan_text(json.dumps(plan("live"))), plan_source="test")
    with live as server:
        url = f"{server.url}/runs/live/events"
        sent = {**headers, "Last-Event-ID": value.encode()}  # bytes: any header a client sends
        bad = httpx.get(url, headers=sent, timeout=30)
        with httpx.stream(
            "GET", url, headers={**headers, "Last-Event-ID": str(2**63 - 1)}, timeout=30
        ) as fine:
            assert fine.status_code == 200
            first = next(fine.iter_lines())
        after = httpx.get(f"{url}?after={2**63}", headers=headers, timeout=30)
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["code"] == "bad_event_id"
    assert "Last-Event-ID must be a whole number" in bad.json()["error"]["message"]
    assert first.startswith("retry:")
    assert after.status_code == 422
