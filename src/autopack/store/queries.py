"""Reads of the projection rows and the event log that the API, the CLI and the metrics
make: every query outside the append path, in one place, on a store's ``reader`` (it
neither waits for nor holds up a writer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, func, select

from autopack.rows import PhaseRow, RunRow
from autopack.states import RunState
from autopack.store import tables

LAST_SEQ = select(tables.runs.c.last_seq).where(tables.runs.c.id == bindparam("run_id"))
"""Built once: building a statement costs as much as running it, and readers run this
on every request to check that what they keep of a run is current."""
RECENTLY_UPDATED = select(tables.runs.c.id, tables.runs.c.last_seq).where(
    tables.runs.c.updated_at >= bindparam("since")
)
"""Built once: the runs any writer changed lately, read by the API's all-runs tail."""


class RunNotFound(KeyError):
    """No run with that id in the store."""


def run_row(row: Any) -> RunRow:
    return RunRow(**{field: row[field] for field in RunRow.__dataclass_fields__})


def phase_row(row: Any) -> PhaseRow:
    return PhaseRow(**{field: row[field] for field in PhaseRow.__dataclass_fields__})


def run(reader: Engine, run_id: str) -> RunRow:
    with reader.connect() as conn:
        row = conn.execute(select(tables.runs).where(tables.runs.c.id == run_id)).mappings()
        found = row.first()
    if found is None:
        raise RunNotFound(run_id)
    return run_row(found)


def list_runs(
    reader: Engine, state: RunState | None = None, limit: int = 50, offset: int = 0
) -> list[RunRow]:
    """Runs, newest first."""
    query = select(tables.runs).order_by(tables.runs.c.created_at.desc(), tables.runs.c.id)
    if state is not None:
        query = query.where(tables.runs.c.state == state.value)
    with reader.connect() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return [run_row(row) for row in rows]


def count_runs(reader: Engine, state: RunState | None = None) -> int:
    query = select(func.count()).select_from(tables.runs)
    if state is not None:
        query = query.where(tables.runs.c.state == state.value)
    with reader.connect() as conn:
        return int(conn.execute(query).scalar_one())


def phase_rows(reader: Engine, run_id: str) -> list[dict[str, Any]]:
    query = (
        select(tables.phases)
        .where(tables.phases.c.run_id == run_id)
        .order_by(tables.phases.c.position)
    )
    with reader.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def awaiting_approval(reader: Engine) -> list[str]:
    """The runs with a phase waiting for a person."""
    query = select(tables.runs.c.id).where(tables.runs.c.pending_approvals > 0)
    with reader.connect() as conn:
        return [str(row[0]) for row in conn.execute(query)]


def recently_updated(reader: Engine, seconds: float) -> dict[str, int]:
    """Each run some writer changed in the last ``seconds``, with its newest sequence."""
    since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    with reader.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(RECENTLY_UPDATED, {"since": since})}


@dataclass(frozen=True)
class Figures:
    """What ``/metrics`` exposes, as the store holds it."""

    runs_by_state: dict[str, int]
    tokens: int
    cost_usd: float
    model_calls: int
    cache_read_tokens: int
    cache_write_tokens: int
    input_tokens: int
    gate_decisions: list[tuple[str, int]]
    timeline: list[tuple[str, str | None, str, str, str | None]]
    """(run, phase, event type, time, step) of phase starts, step ends and phase
    failures, in the order they were appended."""


def figures(reader: Engine) -> Figures:
    """Every run's totals, the gate's decisions and the phases' timeline, in one read."""
    runs, events = tables.runs, tables.events
    with reader.connect() as conn:
        grouped = conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state))
        by_state = {str(state): int(count) for state, count in grouped}
        totals = conn.execute(
            select(
                func.coalesce(func.sum(runs.c.tokens), 0),
                func.coalesce(func.sum(runs.c.cost_usd), 0.0),
                func.coalesce(func.sum(runs.c.model_calls), 0),
            )
        ).one()
        called = events.c.type == "model_called"
        cache = conn.execute(
            select(
                func.coalesce(func.sum(events.c.data["cache_read_tokens"].as_integer()), 0),
                func.coalesce(func.sum(events.c.data["cache_write_tokens"].as_integer()), 0),
                func.coalesce(func.sum(events.c.data["input_tokens"].as_integer()), 0),
            ).where(called)
        ).one()
        decision = events.c.data[("result", "decision")].as_string()
        step = events.c.data["step"].as_string()
        decisions = conn.execute(
            select(decision, func.count())
            .where(events.c.type == "step_completed", step == "gate")
            .group_by(decision)
        ).all()
        timeline = conn.execute(
            select(events.c.run_id, events.c.phase_id, events.c.type, events.c.ts, step)
            .where(events.c.type.in_(("phase_started", "step_completed", "phase_failed")))
            .order_by(events.c.id)
        ).all()
    return Figures(
        runs_by_state=by_state,
        tokens=totals[0],
        cost_usd=totals[1],
        model_calls=totals[2],
        cache_read_tokens=int(cache[0]),
        cache_write_tokens=int(cache[1]),
        input_tokens=int(cache[2]),
        gate_decisions=[(str(d or ""), int(c)) for d, c in decisions],
        timeline=[(r[0], r[1], r[2], r[3], r[4]) for r in timeline],
    )
