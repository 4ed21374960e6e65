"""Location groups, channels and incoming supply (domain/channels.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from omnistock.server.domain.feed_order import MAX_QUANTITY

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "location_groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "location_group_members",
        sa.Column("group_id", sa.String(64), sa.ForeignKey("location_groups.id"), primary_key=True),
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
    )
    op.create_index("ix_location_group_members_location", "location_group_members", ["location_id"])
    op.create_table(
        "channels",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("group_id", sa.String(64), sa.ForeignKey("location_groups.id"), nullable=False),
        sa.Column("default_protection", sa.BigInteger(), nullable=False),
        sa.Column("sells_incoming", sa.Boolean(), nullable=False),
        sa.Column("low_threshold", sa.Integer(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            f"default_protection BETWEEN 0 AND {MAX_QUANTITY}", name="ck_channels_protection"
        ),
        sa.CheckConstraint("low_threshold >= 1", name="ck_channels_low_threshold"),
    )
    op.create_table(
        "channel_protection",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.id"), primary_key=True),
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            f"units BETWEEN 0 AND {MAX_QUANTITY}", name="ck_channel_protection_units"
        ),
    )
    op.create_table(
        "incoming_lines",
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("line_id", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("expected_date", sa.String(10), nullable=False),
        sa.Column("line_key", sa.LargeBinary(32), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            f"quantity BETWEEN 0 AND {MAX_QUANTITY}", name="ck_incoming_lines_quantity"
        ),
    )
    op.create_index("ix_incoming_lines_sku", "incoming_lines", ["sku", "location_id"])
    op.create_table(
        "incoming_watermarks",
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("as_of_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("incoming_watermarks")
    op.drop_index("ix_incoming_lines_sku", table_name="incoming_lines")
    op.drop_table("incoming_lines")
    op.drop_table("channel_protection")
    op.drop_table("channels")
    op.drop_index("ix_location_group_members_location", table_name="location_group_members")
    op.drop_table("location_group_members")
    op.drop_table("location_groups")
