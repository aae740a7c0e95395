"""Verification baselines by key (base tree and test command): measured once, shared by
every run and process on the same database (see ``verify/baseline.py``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select, update

from autopack.store import tables
from autopack.store.db import utcnow


def get(reader: Engine, key: str) -> dict[str, Any] | None:
    with reader.connect() as conn:
        value = conn.execute(
            select(tables.baselines.c.value).where(tables.baselines.c.key == key)
        ).scalar()
    return value if isinstance(value, dict) else None


def put(engine: Engine, key: str, value: dict[str, Any]) -> None:
    """Store a baseline; one already there is replaced (an unjudged one judged again)."""
    with engine.begin() as conn:
        exists = conn.execute(
            select(tables.baselines.c.key).where(tables.baselines.c.key == key)
        ).first()
        if exists is None:
            conn.execute(insert(tables.baselines).values(key=key, value=value, created_at=utcnow()))
        else:
            row = tables.baselines.c.key == key
            conn.execute(update(tables.baselines).where(row).values(value=value))
