"""Autopilots: each autopilot's event log and its projection row.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autopilots",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("branch", sa.String(200), nullable=False),
        sa.Column("iterations", sa.Integer, nullable=False),
        sa.Column("stop_reason", sa.Text, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "autopilot_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("autopilot_id", sa.String(64), sa.ForeignKey("autopilots.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("autopilot_id", "seq", name="uq_autopilot_events_seq"),
    )


def downgrade() -> None:
    op.drop_table("autopilot_events")
    op.drop_table("autopilots")
