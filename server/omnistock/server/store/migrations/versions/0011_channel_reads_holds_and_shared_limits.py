"""Member groups, channel methods, network holds, keys bound to channels, shared rate limits.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A group may take in other groups (the whole network: warehouses and every region).
    op.create_table(
        "location_group_children",
        sa.Column("group_id", sa.String(64), sa.ForeignKey("location_groups.id"), primary_key=True),
        sa.Column(
            "member_group_id", sa.String(64), sa.ForeignKey("location_groups.id"), primary_key=True
        ),
    )
    # The methods a channel sells by.
    with op.batch_alter_table("channels") as batch:
        batch.add_column(
            sa.Column("ship_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("pickup_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    # A network hold's channel and method; the part of a line held from incoming supply.
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("channel_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("channel_method", sa.String(16), nullable=True))
    with op.batch_alter_table("reservation_lines") as batch:
        batch.add_column(
            sa.Column("incoming_quantity", sa.BigInteger(), nullable=False, server_default="0")
        )
    # None: every channel.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("channels", sa.JSON(), nullable=True))
    # One token bucket per key, shared by every process on the database.
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("channels")
    with op.batch_alter_table("reservation_lines") as batch:
        batch.drop_column("incoming_quantity")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("channel_method")
        batch.drop_column("channel_id")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("pickup_enabled")
        batch.drop_column("ship_enabled")
    op.drop_table("location_group_children")
