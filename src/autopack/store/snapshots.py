"""A run as its projection rows show it, read without a fold (:class:`RunSnapshot`).

The rows are updated in the transaction of each append, so reading them costs the same
however long the log is. What the rows do not hold (the plan, whether a cancel is
pending, the gate proofs of unlanded phases) comes from a few marks of the log, kept
per run and extended by the new events only.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection, bindparam, func, select

from autopack.events import CancelRequested, PhaseStarted, RunStarted, StepCompleted
from autopack.plan import Plan
from autopack.rows import PhaseRow, RunRow
from autopack.store import tables
from autopack.store.queries import RunNotFound, phase_row, run_row

PLANS_CACHED = 256
"""Parsed plans kept by digest; a plan never changes once its run is created."""
MARKS_CACHED = 4096
"""Runs whose marks (see :data:`Marks`) are kept, so a re-read scans only new events."""


@dataclass(frozen=True)
class RunSnapshot:
    """A run's projection rows read in one transaction, plus what the rows do not hold."""

    run: RunRow
    plan: Plan
    phases: list[PhaseRow]
    """In plan order."""
    cancel_requested: bool
    gate_proofs: dict[str, str]
    """Per phase that has not landed: the proof hash of its current attempt's gate result."""


K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used entry; safe between threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)


Marks = dict[tuple[str, str | None], int]
"""The last sequence number of each run start, cancel request and phase start."""


class Snapshots:
    """Reads snapshots, keeping parsed plans and each run's marks between reads."""

    def __init__(self) -> None:
        self._plans: Lru[str, Plan] = Lru(PLANS_CACHED)
        self._marks: Lru[str, tuple[int, Marks]] = Lru(MARKS_CACHED)

    def read(self, conn: Connection, run_id: str) -> RunSnapshot:
        found = conn.execute(RUN_ROW, {"run_id": run_id}).mappings().first()
        if found is None:
            raise RunNotFound(run_id)
        phases = [phase_row(r) for r in conn.execute(PHASE_ROWS, {"run_id": run_id}).mappings()]
        marks = self._marks_until(conn, run_id, int(found["last_seq"]))
        unlanded = [
            p.phase_id
            for p in phases
            if not p.proof_hash and (p.decision or (PhaseStarted.TYPE, p.phase_id) in marks)
        ]
        gate_proofs = _gate_proofs(conn, run_id, unlanded, marks)
        plan = self._plan(conn, run_id, str(found["plan_digest"]))
        started = marks.get((RunStarted.TYPE, None), 0)
        return RunSnapshot(
            run=run_row(found),
            plan=plan,
            phases=phases,
            cancel_requested=marks.get((CancelRequested.TYPE, None), 0) > started,
            gate_proofs=gate_proofs,
        )

    def _plan(self, conn: Connection, run_id: str, digest: str) -> Plan:
        plan = self._plans.get(digest)
        if plan is None:
            data = conn.execute(CREATED, {"run_id": run_id}).scalar_one()
            created = json.loads(data) if isinstance(data, str) else data
            plan = Plan.model_validate(created["plan"])
            self._plans.put(digest, plan)
        return plan

    def _marks_until(self, conn: Connection, run_id: str, last_seq: int) -> Marks:
        """The run's marks up to ``last_seq``, reading only the events since the last time.

        The marks are maxima, so the newer events' marks simply replace older ones; a
        read costs what the new events cost, not what the whole log does.
        """
        since, marks = self._marks.get(run_id) or (0, {})
        if since > last_seq:  # kept by a newer read than this snapshot: not for this one
            since, marks = 0, {}
        if since < last_seq:
            rows = conn.execute(_MARKS, {"run_id": run_id, "after": since})
            marks = {**marks, **{(str(kind), phase): int(seq) for kind, phase, seq in rows}}
            self._marks.put(run_id, (last_seq, marks))
        return marks


RUN_ROW = select(tables.runs).where(tables.runs.c.id == bindparam("run_id"))
PHASE_ROWS = (
    select(tables.phases)
    .where(tables.phases.c.run_id == bindparam("run_id"))
    .order_by(tables.phases.c.position)
)
CREATED = select(tables.events.c.data).where(
    tables.events.c.run_id == bindparam("run_id"), tables.events.c.seq == 1
)
_MARKS = (
    select(tables.events.c.type, tables.events.c.phase_id, func.max(tables.events.c.seq))
    .where(
        tables.events.c.run_id == bindparam("run_id"),
        tables.events.c.seq > bindparam("after"),
        tables.events.c.type.in_([RunStarted.TYPE, CancelRequested.TYPE, PhaseStarted.TYPE]),
    )
    .group_by(tables.events.c.type, tables.events.c.phase_id)
)
_STEP_RESULTS = (
    select(tables.events.c.phase_id, tables.events.c.seq, tables.events.c.data)
    .where(
        tables.events.c.run_id == bindparam("run_id"),
        tables.events.c.seq > bindparam("after"),
        tables.events.c.type == StepCompleted.TYPE,
        tables.events.c.phase_id.in_(bindparam("phase_ids", expanding=True)),
    )
    .order_by(tables.events.c.seq)
)


def _gate_proofs(
    conn: Connection,
    run_id: str,
    phase_ids: list[str],
    marks: Marks,
) -> dict[str, str]:
    """Each phase's gate proof hash since its last start, as the fold keeps it.

    A phase start clears the attempt's step results and a later gate result replaces an
    earlier one, so the last gate result after the last phase start is the one shown.
    """
    if not phase_ids:
        return {}
    starts = [marks.get((PhaseStarted.TYPE, phase_id), 0) for phase_id in phase_ids]
    params = {"run_id": run_id, "phase_ids": phase_ids, "after": min(starts)}
    rows = conn.execute(_STEP_RESULTS, params)
    found: dict[str, str] = {}
    for phase_id, seq, data in rows:
        if seq < marks.get((PhaseStarted.TYPE, phase_id), 0):
            continue
        done = data if isinstance(data, dict) else json.loads(data)
        if done.get("step") == "gate":
            found[phase_id] = str(done.get("result", {}).get("proof_hash", ""))
    return found
