"""Reservations and their lines.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("customer_reference", sa.String(128), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("committed_at_us", sa.BigInteger(), nullable=True),
        sa.Column("ended_at_us", sa.BigInteger(), nullable=True),
        sa.Column("holds_stock", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_reservations_location_state", "reservations", ["location_id", "state"])
    op.create_index("ix_reservations_state_expires", "reservations", ["state", "expires_at_us"])
    op.create_table(
        "reservation_lines",
        sa.Column(
            "reservation_id", sa.String(32), sa.ForeignKey("reservations.id"), primary_key=True
        ),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ix_reservation_lines_sku_location", "reservation_lines", ["sku", "location_id"]
    )


def downgrade() -> None:
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
