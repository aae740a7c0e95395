"""Executor leases: one process drives a run at a time; a holder that stops renewing its
lease (``expires_at`` passed) is taken over."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from autopack.store import tables


def acquire(engine: Engine, run_id: str, owner: str, ttl_s: float, now: float) -> str | None:
    """Take or renew the run's lease; ``None`` on success, else the live holder's name."""
    table = tables.leases
    with engine.begin() as conn:
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


def release(engine: Engine, run_id: str, owner: str) -> None:
    table = tables.leases
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.run_id == run_id, table.c.owner == owner))
