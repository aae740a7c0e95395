"""Reads stay correct and unblocked under writes: a dashboard sees every new event at
once, and an executor holding the database's write lock does not stall the API."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from api_helpers import plan, wait_for_approval
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autopack.events import ModelCalled
from autopack.store import Store

Keys = dict[str, dict[str, str]]


@contextmanager
def write_lock_held(store: Store) -> Iterator[None]:
    """Hold SQLite's write lock from another connection, as a busy executor does."""
    path = store.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE runs SET reason = reason")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_run_read_again_shows_each_new_event(
    app: FastAPI, client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    store: Store = app.state.ctx.rt.store
    before = client.get("/runs/r1", headers=keys["read"]).json()
    assert before["run"]["tokens"] == 0 and before["run"]["model_calls"] == 0
    call = ModelCalled(role="builder", model="m", input_tokens=10, output_tokens=5, cost_usd=0.5)
    store.append("r1", call)
    after = client.get("/runs/r1", headers=keys["read"]).json()
    assert after["run"]["tokens"] == 15 and after["run"]["model_calls"] == 1
    assert after["budget"]["used"]["cost_usd"] == 0.5
    assert after["run"]["last_seq"] == before["run"]["last_seq"] + 1
    wait_for_approval(store, "r1")
    waiting = client.get("/runs/r1", headers=keys["read"]).json()
    assert waiting["run"]["pending_approvals"] == 1
    assert waiting["tiers"][0]["phases"][0]["state"] == "AWAITING_APPROVAL"


def test_reads_answer_while_a_writer_holds_the_database(
    app: FastAPI, client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    store: Store = app.state.ctx.rt.store
    with write_lock_held(store):
        detail = client.get("/runs/r1", headers=keys["read"])
        listing = client.get("/runs", headers=keys["read"])
        events = store.events("r1")
    assert detail.status_code == 200 and detail.json()["run"]["id"] == "r1"
    assert listing.status_code == 200 and listing.json()["total"] == 1
    assert [e.type for e in events] == ["run_created"]
