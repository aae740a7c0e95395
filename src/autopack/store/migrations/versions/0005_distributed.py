"""Distributed runs: a budget ledger safe under concurrent workers, and run files.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_holds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("phase_id", sa.String(64)),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("settled", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "run_files",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(400), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_files")
    op.drop_table("budget_holds")
