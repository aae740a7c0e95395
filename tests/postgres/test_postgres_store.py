"""The store on PostgreSQL under concurrent workers: budget reservations never
oversubscribe a run's cap, and event appends from many processes get distinct
sequence numbers with every event kept."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from autopack.engine.budget_ledger import StoreBudgetLedger
from autopack.events import ModelCalled, RunCreated
from autopack.llm.budget import Caps
from autopack.llm.errors import BudgetExceeded
from autopack.plan import parse_plan_text
from autopack.store import SqlStore

pytestmark = pytest.mark.services

PLAN = parse_plan_text(
    "run: {goal: g}\ntiers:\n  - id: t\n    phases:\n"
    "      - {id: p, goal: g, scope: {paths: [a]}}\n"
)


def make_run(url: str, run_id: str) -> None:
    created = RunCreated(
        plan=PLAN.model_dump(mode="json"),
        plan_digest=PLAN.digest(),
        plan_source="plan.yaml",
        repo="file:///repo.git",
        base_commit="0" * 40,
        branch=f"autopack/{run_id}",
    )
    SqlStore(url).create_run(run_id, created)


def reserve_many(url: str, run_id: str, tries: int, queue: Any) -> None:
    """One worker: reserve until refused, settling each reservation at its worst case."""
    store = SqlStore(url)
    ledger = StoreBudgetLedger(store.engine, run_id, Caps(tokens=1000, model_calls=60), {})
    granted = 0
    for _ in range(tries):
        try:
            held = ledger.reserve("p", 30, 0.0)
        except BudgetExceeded:
            continue
        granted += 1
        ledger.reconcile(held, 20, 10, 0.0)
    queue.put(granted)


def test_concurrent_reservations_never_exceed_the_cap(postgres: Any) -> None:
    url = postgres.database()
    make_run(url, "budget-run")
    queue: Any = multiprocessing.get_context("spawn").Queue()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=reserve_many, args=(url, "budget-run", 25, queue)) for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    granted = sum(queue.get(timeout=5) for _ in procs)
    ledger = StoreBudgetLedger(SqlStore(url).engine, "budget-run", Caps(tokens=1000), {})
    assert granted == 1000 // 30  # 100 tries against room for 33 calls
    assert ledger.spent().tokens == granted * 30 <= 1000
    assert ledger.reserved().model_calls == 0


def append_many(url: str, run_id: str, count: int) -> None:
    store = SqlStore(url)
    for _ in range(count):
        call = ModelCalled(
            phase_id="p",
            attempt=0,
            role="builder",
            model="m",
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
        )
        store.append(run_id, call)


def test_concurrent_appends_keep_every_event_in_one_sequence(postgres: Any) -> None:
    url = postgres.database()
    make_run(url, "append-run")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=append_many, args=(url, "append-run", 30)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    store = SqlStore(url)
    seqs = [event.seq for event in store.events("append-run")]
    assert seqs == list(range(1, 122))
    assert store.view("append-run").spend.model_calls == 120
    assert store.run("append-run").model_calls == 120
