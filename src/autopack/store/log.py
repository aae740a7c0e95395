"""The event log: appending an event and updating its projection rows, reading events
and folded views, on SQLAlchemy (:class:`SqlStore`).

Appending an event, moving the run's sequence number and updating the run and phase
projection rows happen in one transaction, so readers never see an event without its
effect or the reverse. ``runs/<run_id>/events.jsonl`` mirrors the log for people and
tools; it is rebuilt from the database whenever it falls behind. The other jobs of the
store live beside it (``db``, ``snapshots``, ``queries``, ``leases``, ``baselines``,
``keys``, ``files``, ``sot``); this class is the one object callers hold.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from autopack.events import Event, Payload, RunCreated
from autopack.projection import RunView, apply, fold
from autopack.rows import RunRow
from autopack.states import PhaseState, RunState
from autopack.store import baselines, leases, queries, tables
from autopack.store.autopilots import AutopilotLog
from autopack.store.db import READ_ONLY, FastRead, make_engine, migrate, utcnow
from autopack.store.queries import RunNotFound
from autopack.store.snapshots import RunSnapshot, Snapshots

BUMP_SEQ = (
    update(tables.runs)
    .where(tables.runs.c.id == bindparam("b_run"))
    .values(last_seq=tables.runs.c.last_seq + 1)
    .returning(tables.runs.c.last_seq)
)
INSERT_EVENT = insert(tables.events)
UPDATE_RUN = update(tables.runs).where(tables.runs.c.id == bindparam("b_run"))
UPDATE_PHASE = update(tables.phases).where(
    tables.phases.c.run_id == bindparam("b_run"), tables.phases.c.phase_id == bindparam("b_phase")
)
INSERT_PHASE = insert(tables.phases)
"""The write statements of an append, built once with their values as parameters: a
statement built per call with its values inlined cost SQLAlchemy a cache-key walk
over every value, most of an append's time."""


class RunExists(ValueError):
    """A run with that id is already stored."""


class SqlStore:
    """The :class:`~autopack.store.protocol.Store` on SQLAlchemy (SQLite, PostgreSQL).

    Safe to share between threads of one process.
    """

    def __init__(self, url: str, runs_dir: Path | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.reader: Engine = self.engine.execution_options(**{READ_ONLY: True})
        """The same database for reads only: they neither wait for nor hold up writers."""
        migrate(self.engine)
        self.runs_dir = runs_dir
        self._lock = threading.RLock()
        self._views: dict[str, RunView] = {}
        self._mirrored: dict[str, int] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._fast: dict[Select[Any], FastRead] = {}
        self._snapshots = Snapshots()
        self.autopilots = AutopilotLog(self.engine, self.reader, self._lock)
        """The autopilots' event logs (:mod:`autopack.store.autopilots`)."""

    def close(self) -> None:
        self.engine.dispose()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event this process appends (live views)."""
        self._listeners.append(listener)

    # -- writing -----------------------------------------------------------------

    def create_run(self, run_id: str, created: RunCreated) -> Event:
        """Store a new run whose log starts with ``created``."""
        now = utcnow()
        draft = Event.of(run_id, created).model_copy(update={"seq": 1, "ts": now})
        view = apply(None, draft)
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(tables.runs).values(self._run_values(view, now)))
                    conn.execute(insert(tables.events).values(self._event_values(draft)))
                    self._write_phases(conn, view, None, now)
            except IntegrityError as exc:
                raise RunExists(run_id) from exc
            self._views[run_id] = view
        self._after_append(draft)
        return draft

    def append(self, run_id: str, payload: Payload) -> Event:
        """Append one event and update the projections in the same transaction."""
        with self._lock:
            now = utcnow()
            with self.engine.begin() as conn:
                row = conn.execute(BUMP_SEQ, {"b_run": run_id}).first()
                if row is None:
                    raise RunNotFound(run_id)
                seq = int(row[0])
                stored = Event.of(run_id, payload).model_copy(update={"seq": seq, "ts": now})
                view = self._view_for_write(conn, run_id, seq - 1)
                try:
                    apply(view, stored)
                except Exception:
                    self._views.pop(run_id, None)
                    raise
                conn.execute(INSERT_EVENT, self._event_values(stored))
                values = self._run_values(view, now)
                del values["id"]
                conn.execute(UPDATE_RUN, {"b_run": run_id, **values})
                self._write_phases(conn, view, stored.phase_id, now)
        self._after_append(stored)
        return stored

    def _view_for_write(self, conn: Connection, run_id: str, last_seq: int) -> RunView:
        view = self._views.get(run_id)
        if view is None or view.last_seq != last_seq:
            view = fold(self._read_events(conn, run_id, 0))
            self._views[run_id] = view
        return view

    def _after_append(self, stored: Event) -> None:
        self._mirror(stored)
        for listener in self._listeners:
            listener(stored)

    @staticmethod
    def _event_values(stored: Event) -> dict[str, Any]:
        return {
            "run_id": stored.run_id,
            "seq": stored.seq,
            "ts": stored.ts,
            "type": stored.type,
            "phase_id": stored.phase_id,
            "data": stored.data,
        }

    @staticmethod
    def _run_values(view: RunView, now: str) -> dict[str, Any]:
        states = [phase.state for phase in view.phases.values()]
        return {
            "id": view.run_id,
            "state": view.state.value,
            "goal": view.plan.run.goal,
            "repo": view.repo,
            "branch": view.branch,
            "base_commit": view.base_commit,
            "plan_digest": view.plan.digest(),
            "reason": view.reason,
            "last_seq": view.last_seq,
            "phases_total": len(states),
            "phases_complete": states.count(PhaseState.COMPLETE),
            "pending_approvals": states.count(PhaseState.AWAITING_APPROVAL),
            "tokens": view.spend.tokens,
            "cost_usd": view.spend.cost_usd,
            "model_calls": view.spend.model_calls,
            "created_at": view.created_at or now,
            "updated_at": now,
        }

    def _write_phases(
        self, conn: Connection, view: RunView, phase_id: str | None, now: str
    ) -> None:
        targets = [view.phases[phase_id]] if phase_id in view.phases else view.phases.values()
        for phase in targets:
            gate = phase.steps.get("gate", {})
            values = {
                "tier": phase.tier,
                "position": phase.position,
                "state": phase.state.value,
                "attempt": phase.attempt,
                "step": phase.step,
                "reason": phase.reason,
                "commit_sha": phase.commit,
                "proof_hash": phase.proof_hash,
                "decision": str(gate.get("decision", "")),
                "tokens": phase.spend.tokens,
                "cost_usd": phase.spend.cost_usd,
                "model_calls": phase.spend.model_calls,
                "updated_at": now,
            }
            key = {"b_run": view.run_id, "b_phase": phase.id}
            if conn.execute(UPDATE_PHASE, {**key, **values}).rowcount == 0:
                conn.execute(INSERT_PHASE, {"run_id": view.run_id, "phase_id": phase.id, **values})

    def _mirror(self, stored: Event) -> None:
        if self.runs_dir is None:
            return
        path = self.runs_dir / stored.run_id / "events.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        known = self._mirrored.get(stored.run_id)
        if known is None and path.exists():
            with path.open("rb") as handle:
                known = sum(1 for _ in handle)
        if (known or 0) != stored.seq - 1:
            lines = [e.model_dump_json() + "\n" for e in self.events(stored.run_id)]
            path.write_text("".join(lines), encoding="utf-8")
        else:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(stored.model_dump_json() + "\n")
        self._mirrored[stored.run_id] = stored.seq

    # -- reading -----------------------------------------------------------------

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        with self.reader.connect() as conn:
            return list(self._read_events(conn, run_id, after))

    @staticmethod
    def _read_events(conn: Connection, run_id: str, after: int) -> Iterator[Event]:
        query = (
            select(tables.events)
            .where(tables.events.c.run_id == run_id, tables.events.c.seq > after)
            .order_by(tables.events.c.seq)
        )
        for row in conn.execute(query).mappings():
            data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
            yield Event(run_id=run_id, seq=row["seq"], ts=row["ts"], type=row["type"], data=data)

    def view(self, run_id: str) -> RunView:
        """The run's projected state, folded from its events (cached while current).

        The lock guards only the cache, never the read: a reader must not wait for an
        append's transaction. A fold of this snapshot replaces only an older cached view
        (an append in flight may already have moved the cached one on).
        """
        with self.reader.connect() as conn:
            last = conn.execute(queries.LAST_SEQ, {"run_id": run_id}).scalar()
            if last is None:
                raise RunNotFound(run_id)
            cached = self._views.get(run_id)
            if cached is not None and cached.last_seq == last:
                return cached
            view = fold(self._read_events(conn, run_id, 0))
        with self._lock:
            cached = self._views.get(run_id)
            if cached is None or cached.last_seq < view.last_seq:
                self._views[run_id] = view
        return view

    def read_first(self, statement: Select[Any], **params: Any) -> tuple[Any, ...] | None:
        """The first row of a prebuilt ``statement``, read the fast way (:class:`FastRead`).

        ``statement`` must be built once (a module constant): it is compiled once.
        """
        fast = self._fast.get(statement)
        if fast is None:
            fast = self._fast[statement] = FastRead(self.engine, statement)
        return fast.first(params)

    def last_seq(self, run_id: str) -> int:
        """The run's newest sequence number: whether anything changed, in one cheap read."""
        row = self.read_first(queries.LAST_SEQ, run_id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return int(row[0])

    def recently_updated(self, seconds: float) -> dict[str, int]:
        """Each run some writer changed in the last ``seconds``, with its newest sequence.

        Compared with what a reader saw before, it tells which runs moved, whichever
        process (an executor, a Temporal worker) appended; ``seconds`` should cover the
        clock skew between writers and the reader's polling gap.
        """
        return queries.recently_updated(self.reader, seconds)

    def snapshot(self, run_id: str) -> RunSnapshot:
        """The run as its projection rows show it, with no fold (see :class:`RunSnapshot`)."""
        with self.reader.connect() as conn:
            return self._snapshots.read(conn, run_id)

    def run(self, run_id: str) -> RunRow:
        return queries.run(self.reader, run_id)

    def list_runs(
        self, state: RunState | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunRow]:
        return queries.list_runs(self.reader, state, limit, offset)

    def count_runs(self, state: RunState | None = None) -> int:
        return queries.count_runs(self.reader, state)

    def phase_rows(self, run_id: str) -> list[dict[str, Any]]:
        return queries.phase_rows(self.reader, run_id)

    def awaiting_approval(self) -> list[str]:
        """The runs with a phase waiting for a person."""
        return queries.awaiting_approval(self.reader)

    def figures(self) -> queries.Figures:
        """What ``/metrics`` exposes."""
        return queries.figures(self.reader)

    # -- executor leases -------------------------------------------------------------

    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, now: float) -> str | None:
        """Take or renew the run's lease; ``None`` on success, else the live holder's name."""
        with self._lock:
            return leases.acquire(self.engine, run_id, owner, ttl_s, now)

    def release_lease(self, run_id: str, owner: str) -> None:
        with self._lock:
            leases.release(self.engine, run_id, owner)

    # -- verification baselines ------------------------------------------------------

    def baseline_get(self, key: str) -> dict[str, Any] | None:
        return baselines.get(self.reader, key)

    def baseline_put(self, key: str, value: dict[str, Any]) -> None:
        """Store a baseline; one already there is replaced (an unjudged one judged again)."""
        with self._lock:
            baselines.put(self.engine, key, value)
