"""Stock: an ordering key per field, and the schema enforces each quantity's range.

Each of on_hand and safety stock keeps the key of the update that last set it, packed
(domain/feed_order.py). Existing records take their current time and sequence as the
key of both fields, with a tie-break from their values.

A record whose quantity is outside its documented range (or not a whole number, as an
overflow left on SQLite) cannot be trusted: it is brought into range and its source
time set to the epoch, so it reads UNKNOWN until its feed sends it again (any update
is newer). Then CHECK constraints keep every quantity in range.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from omnistock.server.domain.feed_order import MAX_QUANTITY, MIN_ON_HAND, pack_key
from omnistock.server.store.packed_keys import pack_key_sql
from omnistock.server.store.tables import STOCK_CHECKS

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BAD = (
    f"(on_hand NOT BETWEEN {MIN_ON_HAND} AND {MAX_QUANTITY}"
    " OR on_hand <> CAST(on_hand AS BIGINT)"
    f" OR reserved NOT BETWEEN 0 AND {MAX_QUANTITY} OR reserved <> CAST(reserved AS BIGINT)"
    f" OR (safety_stock IS NOT NULL AND (safety_stock NOT BETWEEN 0 AND {MAX_QUANTITY}"
    " OR safety_stock <> CAST(safety_stock AS BIGINT))))"
)


def _clamp(column: str, low: int, high: int, *, postgres: bool) -> str:
    least, greatest = ("LEAST", "GREATEST") if postgres else ("min", "max")
    return f"{least}({greatest}(CAST({column} AS BIGINT), {low}), {high})"


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("location_id", sa.String(64), sa.ForeignKey("locations.id"), primary_key=True),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("safety_stock", sa.BigInteger(), nullable=True),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("source_updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("source_sequence", sa.BigInteger(), nullable=True),
        sa.Column("on_hand_key", sa.LargeBinary(32), nullable=False),
        sa.Column("safety_key", sa.LargeBinary(32), nullable=True),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    on_hand = _clamp("on_hand", MIN_ON_HAND, MAX_QUANTITY, postgres=postgres)
    reserved = _clamp("reserved", 0, MAX_QUANTITY, postgres=postgres)
    safety = (
        "CASE WHEN safety_stock IS NULL THEN NULL ELSE "
        + _clamp("safety_stock", 0, MAX_QUANTITY, postgres=postgres)
        + " END"
    )
    time = f"CASE WHEN {_BAD} THEN 0 ELSE source_updated_at_us END"
    if not postgres:
        # SQLite has no way to build bytes from numbers in SQL: the key packs in Python.
        op.get_bind().connection.driver_connection.create_function(  # type: ignore[union-attr]
            "omnistock_pack_key", 4, pack_key, deterministic=True
        )
    # The values the keys' ties are made of are the repaired ones.
    key = pack_key_sql(
        time,
        "COALESCE(source_sequence, -1)",
        f"2 * ({on_hand}) + 1",
        f"COALESCE({safety}, -1)",
        postgres=postgres,
    )
    select = (
        f"SELECT sku, location_id, {on_hand}, {reserved}, {safety}, received_at_us, {time},"
        f" source_sequence, {key}, CASE WHEN safety_stock IS NULL THEN NULL ELSE {key} END"
        " FROM stock"
    )
    names = ", ".join(column.name for column in _columns())
    if postgres:
        # Rebuilt in place of ALTERs: one pass over the table, and the same on both.
        op.execute("ALTER TABLE stock RENAME TO stock_before_0008")
        op.execute("ALTER INDEX ix_stock_location_id RENAME TO ix_stock_before_0008")
        op.execute("ALTER TABLE stock_before_0008 RENAME CONSTRAINT stock_pkey TO stock_pkey_0008")
    else:
        op.execute("ALTER TABLE stock RENAME TO stock_before_0008")
        op.execute("DROP INDEX ix_stock_location_id")
    op.create_table(
        "stock",
        *_columns(),
        *(sa.CheckConstraint(check.sqltext, name=check.name) for check in STOCK_CHECKS),
        sqlite_with_rowid=False,
    )
    op.execute(
        f"INSERT INTO stock ({names}) {select.replace('FROM stock', 'FROM stock_before_0008')}"
    )
    op.execute("DROP TABLE stock_before_0008")
    op.create_index("ix_stock_location_id", "stock", ["location_id"])


def downgrade() -> None:
    raise NotImplementedError("0008 is not reversible: the per-field keys would be lost")
