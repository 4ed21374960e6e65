"""Locations and stock records.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "locations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("postal_code", sa.String(16), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("weekly_hours", sa.JSON(), nullable=False),
        sa.Column("hours_exceptions", sa.JSON(), nullable=False),
        sa.Column("pickup", sa.Boolean(), nullable=False),
        sa.Column("ship_from", sa.Boolean(), nullable=False),
        sa.Column("ship_to_store", sa.Boolean(), nullable=False),
        sa.Column("pickup_lead_time_minutes", sa.Integer(), nullable=False),
        sa.Column("shipping_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("default_safety_stock", sa.BigInteger(), nullable=True),
        sa.Column("freshness_budget_seconds", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "stock",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("safety_stock", sa.BigInteger(), nullable=True),
        sa.Column("source_updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("source_sequence", sa.BigInteger(), nullable=True),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_stock_location_id", "stock", ["location_id"])


def downgrade() -> None:
    op.drop_index("ix_stock_location_id", table_name="stock")
    op.drop_table("stock")
    op.drop_table("locations")
