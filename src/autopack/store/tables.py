"""The store's tables (SQLAlchemy Core). The Alembic migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("state", String(16), nullable=False, index=True),
    Column("goal", Text, nullable=False),
    Column("repo", Text, nullable=False),
    Column("branch", String(200), nullable=False),
    Column("base_commit", String(64), nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("phases_total", Integer, nullable=False, default=0),
    Column("phases_complete", Integer, nullable=False, default=0),
    Column("pending_approvals", Integer, nullable=False, default=0),
    Column("tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("model_calls", Integer, nullable=False, default=0),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

phases = Table(
    "phases",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id"), primary_key=True),
    Column("phase_id", String(64), primary_key=True),
    Column("tier", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("state", String(24), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("step", String(16)),
    Column("reason", Text, nullable=False, default=""),
    Column("commit_sha", String(64), nullable=False, default=""),
    Column("proof_hash", String(64), nullable=False, default=""),
    Column("decision", String(24), nullable=False, default=""),
    Column("tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("model_calls", Integer, nullable=False, default=0),
    Column("updated_at", String(40), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("phase_id", String(64)),
    Column("data", JSON, nullable=False),
    UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
)

leases = Table(
    "leases",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)

baselines = Table(
    "baselines",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
)
