"""Idempotency keys per principal (a reservation's owner), and the shared server secrets.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# 0004 made the key unique without naming the constraint: PostgreSQL named it, SQLite did
# not (batch mode names it through this convention so that it can be dropped).
_UNNAMED = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "reservations_idempotency_key_key"
    return "uq_reservations_idempotency_key"


def upgrade() -> None:
    with op.batch_alter_table("reservations", naming_convention=_UNNAMED) as batch:
        batch.add_column(sa.Column("owner", sa.String(32), nullable=False, server_default=""))
        batch.drop_constraint(_old_unique_name(), type_="unique")
        batch.create_unique_constraint(
            "uq_reservations_owner_idempotency_key", ["owner", "idempotency_key"]
        )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_constraint("uq_reservations_owner_idempotency_key", type_="unique")
        batch.drop_column("owner")
        batch.create_unique_constraint(_old_unique_name(), ["idempotency_key"])
