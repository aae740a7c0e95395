"""Autopilots' event logs, beside the runs' (``Store.autopilots``).

An append folds the autopilot's log (tens of events), applies the new event with
:func:`autopack.autopilot_projection.apply_autopilot` (which refuses what the state does
not allow: a second answer to one plan, anything after the stop), inserts it and updates
the ``autopilots`` row, in one transaction. Any process may append: the autopilot's own,
or the CLI, the API or the dashboard answering its plan.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from autopack.autopilot_projection import AutopilotView, apply_autopilot, fold_autopilot
from autopack.events import AutopilotEvent, AutopilotStarted, Payload

metadata = MetaData()
autopilots = Table(
    "autopilots",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("state", String(24), nullable=False),
    Column("branch", String(200), nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("stop_reason", Text, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)
autopilot_events = Table(
    "autopilot_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("autopilot_id", String(64), ForeignKey("autopilots.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("data", JSON, nullable=False),
    UniqueConstraint("autopilot_id", "seq", name="uq_autopilot_events_seq"),
)


class AutopilotNotFound(KeyError):
    """No autopilot with that id in the store."""


class AutopilotExists(ValueError):
    """An autopilot with that id is already stored."""


class AutopilotLog:
    """The autopilots of one store."""

    def __init__(self, engine: Engine, reader: Engine, lock: threading.RLock) -> None:
        self._engine = engine
        self._reader = reader
        self._lock = lock

    def create(self, autopilot_id: str, started: AutopilotStarted) -> AutopilotView:
        now = _now()
        event = AutopilotEvent.of(autopilot_id, started).model_copy(update={"seq": 1, "ts": now})
        view = apply_autopilot(None, event)
        with self._lock:
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(autopilots).values(id=autopilot_id, **_row(view)))
                    conn.execute(insert(autopilot_events).values(_event_values(event)))
            except IntegrityError as exc:
                raise AutopilotExists(autopilot_id) from exc
        return view

    def append(self, autopilot_id: str, payload: Payload) -> AutopilotView:
        """Append one event and update the row; the view after it."""
        now = _now()
        with self._lock, self._engine.begin() as conn:
            bumped = conn.execute(
                update(autopilots)
                .where(autopilots.c.id == autopilot_id)
                .values(last_seq=autopilots.c.last_seq + 1)
                .returning(autopilots.c.last_seq)
            ).first()
            if bumped is None:
                raise AutopilotNotFound(autopilot_id)
            view = fold_autopilot(_read(conn, autopilot_id))
            event = AutopilotEvent.of(autopilot_id, payload)
            event = event.model_copy(update={"seq": int(bumped[0]), "ts": now})
            apply_autopilot(view, event)
            conn.execute(insert(autopilot_events).values(_event_values(event)))
            row = _row(view)
            conn.execute(update(autopilots).where(autopilots.c.id == autopilot_id).values(row))
        return view

    def events(self, autopilot_id: str) -> list[AutopilotEvent]:
        with self._reader.connect() as conn:
            found = list(_read(conn, autopilot_id))
        if not found:
            raise AutopilotNotFound(autopilot_id)
        return found

    def view(self, autopilot_id: str) -> AutopilotView:
        return fold_autopilot(self.events(autopilot_id))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest autopilots' rows, newest first."""
        query = select(autopilots).order_by(autopilots.c.created_at.desc()).limit(limit)
        with self._reader.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _read(conn: Connection, autopilot_id: str) -> Iterator[AutopilotEvent]:
    query = (
        select(autopilot_events)
        .where(autopilot_events.c.autopilot_id == autopilot_id)
        .order_by(autopilot_events.c.seq)
    )
    for row in conn.execute(query).mappings():
        data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
        yield AutopilotEvent(
            autopilot_id=autopilot_id, seq=row["seq"], ts=row["ts"], type=row["type"], data=data
        )


def _event_values(event: AutopilotEvent) -> dict[str, Any]:
    return {
        "autopilot_id": event.autopilot_id,
        "seq": event.seq,
        "ts": event.ts,
        "type": event.type,
        "data": event.data,
    }


def _row(view: AutopilotView) -> dict[str, Any]:
    return {
        "state": view.state,
        "branch": view.started.branch,
        "iterations": len(view.iterations),
        "stop_reason": view.stop_reason,
        "last_seq": view.last_seq,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }
