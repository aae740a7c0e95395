"""A budget ledger kept in the store, for workers on many machines spending one budget.

The in-memory :class:`~autopack.llm.budget.BudgetLedger` only sees the calls of its
own process; workers of a distributed run each hold reservations the others cannot
see. This ledger keeps every reservation as a row of ``budget_holds`` and checks a new
one against the sum of the run's rows while holding a per-run lock (a PostgreSQL
transaction-scoped advisory lock; SQLite's ``BEGIN IMMEDIATE`` already serializes
writers), so concurrent reservations never oversubscribe a cap together.

A hold whose worker died before it settled would block the budget forever; holds
older than ``autopack.store.budget.HOLD_TTL_S`` therefore stop counting (no model call
lives that long).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from autopack.llm.budget import BudgetLedger, Caps, Reservation, Spent, check_caps
from autopack.store.budget import HOLD_TTL_S, budget_holds


class StoreBudgetLedger(BudgetLedger):
    """The budget of one run, as rows in the store; same interface as the in-memory one."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        run_caps: Caps,
        phase_caps: Mapping[str, Caps],
        *,
        hold_ttl_s: float = HOLD_TTL_S,
    ) -> None:
        super().__init__(run_caps, phase_caps, Spent(), {})
        self.engine = engine
        self.run_id = run_id
        self.run_caps = run_caps
        self.phase_caps = dict(phase_caps)
        self.hold_ttl_s = hold_ttl_s

    def reserve(self, phase_id: str | None, tokens: int, cost_usd: float) -> Reservation:
        """Hold a call's worst case; raises :class:`BudgetExceeded` if it does not fit."""
        with self.engine.begin() as conn:
            self._lock_run(conn)
            now = time.time()
            for scope, label, caps in self._db_scopes(phase_id):
                spent, held = self._totals(conn, scope, now=now)
                check_caps(label, "phase" if scope else "run", caps, spent, held, tokens, cost_usd)
            values = {
                "run_id": self.run_id,
                "phase_id": phase_id,
                "tokens": tokens,
                "cost_usd": cost_usd,
                "settled": False,
                "created_at": now,
            }
            row_id = conn.execute(
                insert(budget_holds).values(values).returning(budget_holds.c.id)
            ).scalar_one()
        return Reservation(int(row_id), phase_id, tokens, cost_usd)

    def reconcile(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """The call completed: its hold becomes what the provider reported."""
        values = {"tokens": input_tokens + output_tokens, "cost_usd": cost_usd, "settled": True}
        with self.engine.begin() as conn:
            done = conn.execute(
                update(budget_holds)
                .where(budget_holds.c.id == reservation.id, budget_holds.c.settled.is_(False))
                .values(values)
            )
        if done.rowcount != 1:
            raise ValueError(f"reservation {reservation.id} was already settled")

    def release(self, reservation: Reservation) -> None:
        """The call failed without usage: its hold goes."""
        with self.engine.begin() as conn:
            done = conn.execute(
                delete(budget_holds).where(
                    budget_holds.c.id == reservation.id, budget_holds.c.settled.is_(False)
                )
            )
        if done.rowcount != 1:
            raise ValueError(f"reservation {reservation.id} was already settled")

    def spent(self, phase_id: str | None = None) -> Spent:
        with self.engine.connect() as conn:
            return self._sum(conn, phase_id, settled=True, now=time.time())

    def reserved(self, phase_id: str | None = None) -> Spent:
        with self.engine.connect() as conn:
            return self._sum(conn, phase_id, settled=False, now=time.time())

    def _db_scopes(self, phase_id: str | None) -> list[tuple[str | None, str, Caps]]:
        run_scope: tuple[str | None, str, Caps] = (None, "run", self.run_caps)
        if phase_id is None:
            return [run_scope]
        caps = self.phase_caps.get(phase_id, Caps())
        return [(phase_id, f"phase {phase_id!r}", caps), run_scope]

    def _lock_run(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": self.run_id})

    def _totals(self, conn: Connection, phase_id: str | None, *, now: float) -> tuple[Spent, Spent]:
        """What is spent and what is held, read in ONE statement.

        Two statements would each see their own snapshot (PostgreSQL's READ COMMITTED),
        and a hold settled by another worker between them would be in neither sum:
        ``reconcile`` takes no lock, so the reservation would overshoot the cap.
        """
        where = [
            budget_holds.c.run_id == self.run_id,
            budget_holds.c.settled.is_(True) | (budget_holds.c.created_at >= now - self.hold_ttl_s),
        ]
        if phase_id is not None:
            where.append(budget_holds.c.phase_id == phase_id)
        rows = conn.execute(
            select(
                budget_holds.c.settled,
                func.coalesce(func.sum(budget_holds.c.tokens), 0),
                func.coalesce(func.sum(budget_holds.c.cost_usd), 0.0),
                func.count(),
            )
            .where(*where)
            .group_by(budget_holds.c.settled)
        ).all()
        totals = {bool(row[0]): Spent(int(row[1]), float(row[2]), int(row[3])) for row in rows}
        return totals.get(True, Spent()), totals.get(False, Spent())

    def _sum(self, conn: Connection, phase_id: str | None, *, settled: bool, now: float) -> Spent:
        where = [budget_holds.c.run_id == self.run_id, budget_holds.c.settled.is_(settled)]
        if phase_id is not None:
            where.append(budget_holds.c.phase_id == phase_id)
        if not settled:
            where.append(budget_holds.c.created_at >= now - self.hold_ttl_s)
        row = conn.execute(
            select(
                func.coalesce(func.sum(budget_holds.c.tokens), 0),
                func.coalesce(func.sum(budget_holds.c.cost_usd), 0.0),
                func.count(),
            ).where(*where)
        ).one()
        return Spent(tokens=int(row[0]), cost_usd=float(row[1]), model_calls=int(row[2]))
