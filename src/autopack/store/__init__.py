"""The store: the event log and its projections, in one SQL database.

Appending an event, moving the run's sequence number and updating the run and phase
projection rows happen in one transaction, so readers never see an event without its
effect or the reverse. ``runs/<run_id>/events.jsonl`` mirrors the log for people and
tools; it is rebuilt from the database whenever it falls behind.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from autopack.events import (
    CancelRequested,
    Event,
    Payload,
    PhaseStarted,
    RunCreated,
    RunStarted,
    StepCompleted,
)
from autopack.plan import Plan
from autopack.projection import RunView, apply, fold
from autopack.rows import PhaseRow as PhaseRow
from autopack.rows import RunRow as RunRow
from autopack.states import PhaseState, RunState
from autopack.store import tables

MIGRATIONS = Path(__file__).parent / "migrations"
LAST_SEQ = select(tables.runs.c.last_seq).where(tables.runs.c.id == bindparam("run_id"))
"""Built once: building a statement costs as much as running it, and readers run this
on every request to check that what they keep of a run is current."""
RECENTLY_UPDATED = select(tables.runs.c.id, tables.runs.c.last_seq).where(
    tables.runs.c.updated_at >= bindparam("since")
)
"""Built once: the runs any writer changed lately, read by the API's all-runs tail."""
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
PLANS_CACHED = 256
"""Parsed plans kept by digest; a plan never changes once its run is created."""
MARKS_CACHED = 4096
"""Runs whose marks (see :data:`Marks`) are kept, so a re-read scans only new events."""


class RunNotFound(KeyError):
    """No run with that id in the store."""


class RunExists(ValueError):
    """A run with that id is already stored."""


@dataclass(frozen=True)
class RunSnapshot:
    """A run's projection rows read in one transaction, plus what the rows do not hold.

    The rows are updated in the transaction of each append, so reading them costs the
    same however long the log is, where a fold costs one step per event.
    """

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


class FastRead:
    """A prebuilt single-row SELECT run straight on a pooled DBAPI connection.

    For one statement SQLAlchemy's connection, transaction and result layers cost about
    ten times the query (measured: 136 us against 20 us for a row by primary key), and
    the API runs two such reads per request. A lone SELECT needs no transaction: it
    reads one consistent snapshot by itself. Only plain string and number columns.
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self._engine = engine
        self._sql = compiled.string
        self._order = compiled.positiontup

    def first(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        values = params if self._order is None else tuple(params[n] for n in self._order)
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, values)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()
        return None if row is None else tuple(row)


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


READ_ONLY = "autopack_read_only"
"""Execution option of :attr:`Store.reader`: its SQLite transactions begin deferred."""


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the write lock up front (no deadlocked upgrade); readers never take it.

    In WAL mode a deferred transaction reads a snapshot without waiting for a writer or
    making one wait, so readers of :attr:`Store.reader` run beside an append.
    """
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Event log plus projections. Safe to share between threads of one process."""

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
        self._plans: Lru[str, Plan] = Lru(PLANS_CACHED)
        self._marks: Lru[str, tuple[int, Marks]] = Lru(MARKS_CACHED)

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
            last = conn.execute(LAST_SEQ, {"run_id": run_id}).scalar()
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
        row = self.read_first(LAST_SEQ, run_id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return int(row[0])

    def recently_updated(self, seconds: float) -> dict[str, int]:
        """Each run some writer changed in the last ``seconds``, with its newest sequence.

        Compared with what a reader saw before, it tells which runs moved, whichever
        process (an executor, a Temporal worker) appended; ``seconds`` should cover the
        clock skew between writers and the reader's polling gap.
        """
        since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
        with self.reader.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(RECENTLY_UPDATED, {"since": since})}

    def snapshot(self, run_id: str) -> RunSnapshot:
        """The run as its projection rows show it, with no fold (see :class:`RunSnapshot`)."""
        with self.reader.connect() as conn:
            found = conn.execute(RUN_ROW, {"run_id": run_id}).mappings().first()
            if found is None:
                raise RunNotFound(run_id)
            phases = [
                _phase_row(r) for r in conn.execute(PHASE_ROWS, {"run_id": run_id}).mappings()
            ]
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
            run=_run_row(found),
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

    def run(self, run_id: str) -> RunRow:
        with self.reader.connect() as conn:
            row = conn.execute(select(tables.runs).where(tables.runs.c.id == run_id)).mappings()
            found = row.first()
        if found is None:
            raise RunNotFound(run_id)
        return _run_row(found)

    def list_runs(
        self, state: RunState | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunRow]:
        query = select(tables.runs).order_by(tables.runs.c.created_at.desc(), tables.runs.c.id)
        if state is not None:
            query = query.where(tables.runs.c.state == state.value)
        with self.reader.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        return [_run_row(row) for row in rows]

    def phase_rows(self, run_id: str) -> list[dict[str, Any]]:
        query = (
            select(tables.phases)
            .where(tables.phases.c.run_id == run_id)
            .order_by(tables.phases.c.position)
        )
        with self.reader.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- executor leases -------------------------------------------------------------

    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, now: float) -> str | None:
        """Take or renew the run's lease; ``None`` on success, else the live holder's name.

        A lease whose holder stopped renewing it (``expires_at`` passed) is taken over.
        """
        table = tables.leases
        with self._lock, self.engine.begin() as conn:
            held = conn.execute(select(table).where(table.c.run_id == run_id)).mappings().first()
            if held is None:
                values = {"run_id": run_id, "owner": owner, "expires_at": now + ttl_s}
                try:
                    conn.execute(insert(table).values(values))
                except IntegrityError:
                    return "another executor"
                return None
            if held["owner"] != owner and held["expires_at"] > now:
                return str(held["owner"])
            taken = conn.execute(
                update(table)
                .where(table.c.run_id == run_id, table.c.owner == held["owner"])
                .values(owner=owner, expires_at=now + ttl_s)
            )
        return None if taken.rowcount == 1 else "another executor"

    def release_lease(self, run_id: str, owner: str) -> None:
        table = tables.leases
        with self._lock, self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.run_id == run_id, table.c.owner == owner))

    # -- verification baselines ------------------------------------------------------

    def baseline_get(self, key: str) -> dict[str, Any] | None:
        with self.reader.connect() as conn:
            value = conn.execute(
                select(tables.baselines.c.value).where(tables.baselines.c.key == key)
            ).scalar()
        return value if isinstance(value, dict) else None

    def baseline_put(self, key: str, value: dict[str, Any]) -> None:
        """Store a baseline; one already there is replaced (an unjudged one judged again)."""
        with self._lock, self.engine.begin() as conn:
            exists = conn.execute(
                select(tables.baselines.c.key).where(tables.baselines.c.key == key)
            ).first()
            if exists is None:
                conn.execute(
                    insert(tables.baselines).values(key=key, value=value, created_at=utcnow())
                )
            else:
                row = tables.baselines.c.key == key
                conn.execute(update(tables.baselines).where(row).values(value=value))

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn


def _run_row(row: Any) -> RunRow:
    return RunRow(**{field: row[field] for field in RunRow.__dataclass_fields__})


def _phase_row(row: Any) -> PhaseRow:
    return PhaseRow(**{field: row[field] for field in PhaseRow.__dataclass_fields__})


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
