"""Feed status per location.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_status",
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("last_snapshot_as_of_us", sa.BigInteger(), nullable=True),
        sa.Column("last_snapshot_received_us", sa.BigInteger(), nullable=True),
        sa.Column("last_delta_source_us", sa.BigInteger(), nullable=True),
        sa.Column("last_delta_received_us", sa.BigInteger(), nullable=True),
        sa.Column("snapshot_count", sa.BigInteger(), nullable=False),
        sa.Column("delta_applied_count", sa.BigInteger(), nullable=False),
        sa.Column("stale_count", sa.BigInteger(), nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_status")
