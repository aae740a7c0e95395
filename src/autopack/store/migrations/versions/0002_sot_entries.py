"""Ledger entries mirrored for queries (a derived index, never the source of truth).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sot_entries",
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("file", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("project", "file", "entry_id"),
    )


def downgrade() -> None:
    op.drop_table("sot_entries")
