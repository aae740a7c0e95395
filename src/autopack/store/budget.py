"""The ``budget_holds`` table: budget reservations kept in the store, for workers on many
machines spending one budget.

Only the table lives here (the store knows nothing of models); the ledger that reads and
writes it is :class:`autopack.engine.budget_ledger.StoreBudgetLedger`.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table

HOLD_TTL_S = 900.0
"""Seconds after which an unsettled hold no longer counts: its worker is presumed dead."""

metadata = MetaData()
budget_holds = Table(
    "budget_holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("phase_id", String(64)),
    Column("tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("settled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)
