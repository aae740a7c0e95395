"""The projection rows as lists and tables show them, and a quick read-only reader of a
SQLite store's rows with the standard library's ``sqlite3``.

The :class:`~autopack.store.Store` writes these rows (tables ``runs`` and ``phases``) in
the transaction of each append. Commands that only show them (``autopack runs``,
``autopack status``) read them here, so they start without importing SQLAlchemy and
Alembic. Any doubt (another database, a missing file or column) returns ``None``, and
the caller opens the store as usual.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunRow:
    """One row of the runs projection, as lists and dashboards show it."""

    id: str
    state: str
    goal: str
    repo: str
    branch: str
    reason: str
    phases_total: int
    phases_complete: int
    pending_approvals: int
    tokens: int
    cost_usd: float
    model_calls: int
    created_at: str
    updated_at: str
    last_seq: int


@dataclass(frozen=True)
class PhaseRow:
    """One row of the phases projection."""

    phase_id: str
    tier: int
    position: int
    state: str
    attempt: int
    step: str | None
    reason: str
    commit_sha: str
    proof_hash: str
    decision: str
    tokens: int
    cost_usd: float
    model_calls: int


@dataclass(frozen=True)
class RunStatus:
    """What ``autopack status`` shows of a run, from its rows and a few of its events."""

    run: RunRow
    base_commit: str
    tiers: list[str]
    """Tier ids, in plan order."""
    phases: list[PhaseRow]
    """In plan order."""
    gate_reasons: dict[str, list[str]]
    """Per phase, the reasons of its current attempt's gate, when it has one."""
    input_tokens: tuple[int, int, int] = (0, 0, 0)
    """Prompt tokens of the run's model calls: all, read from a prompt cache, written to it."""


RUN_COLUMNS = ", ".join(f.name for f in fields(RunRow))
PHASE_COLUMNS = ", ".join(f.name for f in fields(PhaseRow))
_GATES_SINCE_START = """
    SELECT e.phase_id, e.data FROM events e
    WHERE e.run_id = ? AND e.type = 'step_completed'
      AND e.seq > COALESCE((SELECT MAX(s.seq) FROM events s WHERE s.run_id = e.run_id
                            AND s.phase_id = e.phase_id AND s.type = 'phase_started'), 0)
    ORDER BY e.seq
"""

_PROMPT_TOKENS = """
    SELECT COALESCE(SUM(json_extract(data, '$.input_tokens')), 0),
           COALESCE(SUM(json_extract(data, '$.cache_read_tokens')), 0),
           COALESCE(SUM(json_extract(data, '$.cache_write_tokens')), 0)
    FROM events WHERE run_id = ? AND type = 'model_called'
"""


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL that exists; ``None`` for anything else."""
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_file() else None


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only, in one read transaction: every query sees the same snapshot (WAL)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    conn.isolation_level = None  # transactions as issued here, none implied
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN")
    return conn


def list_runs(path: Path, state: str | None, limit: int) -> list[RunRow] | None:
    """Runs newest first, as :meth:`Store.list_runs` orders them; ``None`` when unsure."""
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    query = f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC, id LIMIT ?"
    try:
        with _closing(_connect(path)) as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
    except sqlite3.Error:
        return None
    return [RunRow(**dict(row)) for row in rows]


def run_status(path: Path, run_id: str) -> RunStatus | None:
    """The run's rows, tier ids and gate reasons; ``None`` when unsure or not found."""
    try:
        with _closing(_connect(path)) as conn:
            run = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", [run_id]).fetchone()
            if run is None:
                return None
            phases = conn.execute(
                f"SELECT {PHASE_COLUMNS} FROM phases WHERE run_id = ? ORDER BY position",
                [run_id],
            ).fetchall()
            created = conn.execute(
                "SELECT data FROM events WHERE run_id = ? AND seq = 1", [run_id]
            ).fetchone()
            gates = conn.execute(_GATES_SINCE_START, [run_id]).fetchall()
            prompt = conn.execute(_PROMPT_TOKENS, [run_id]).fetchone()
    except sqlite3.Error:
        return None
    if created is None:
        return None
    data: dict[str, Any] = json.loads(created["data"])
    reasons: dict[str, list[str]] = {}
    for phase_id, raw in gates:
        done = json.loads(raw)
        if done.get("step") == "gate":
            reasons[phase_id] = [str(r) for r in done.get("result", {}).get("reasons", [])]
    return RunStatus(
        run=RunRow(**dict(run)),
        base_commit=str(data.get("base_commit", "")),
        tiers=[str(tier.get("id", "")) for tier in data.get("plan", {}).get("tiers", [])],
        phases=[PhaseRow(**dict(row)) for row in phases],
        gate_reasons=reasons,
        input_tokens=(int(prompt[0]), int(prompt[1]), int(prompt[2])),
    )


class _closing:
    """``sqlite3.Connection`` as a context manager commits; this one closes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *_: object) -> None:
        self.conn.close()
