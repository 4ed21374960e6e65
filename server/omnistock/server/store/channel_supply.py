"""What the locations of a channel hold of a few skus: the reads a network hold is
placed by (it is then re-checked inside the write transaction, store.hold_placement).

One query per kind of row for the whole line set, whatever the size of the group: the
stock records of the skus, the stock part of their lapsed holds (not yet swept), their
open incoming lines, and the incoming their counting holds take. Rows of locations
outside the group are dropped as they are read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine

Pair = tuple[str, str]  # (sku, location_id)


@dataclass(frozen=True, slots=True)
class StockRow:
    on_hand: int
    # reserved less the stock part of the holds that had lapsed at the read.
    reserved: int
    safety_stock: int | None
    source_updated_at_us: int


@dataclass(slots=True)
class SupplyRows:
    stock: dict[Pair, StockRow] = field(default_factory=dict)
    # (expected date, quantity) of each open incoming line.
    incoming: defaultdict[Pair, list[tuple[date, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    incoming_held: dict[Pair, int] = field(default_factory=dict)


class ChannelSupplyReader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._m = "%s" if engine.dialect.name == "postgresql" else "?"

    def read(self, skus: Sequence[str], locations: Collection[str], now_us: int) -> SupplyRows:
        rows = SupplyRows()
        if not skus or not locations:
            return rows
        skus = sorted(set(skus))
        marks = ", ".join([self._m] * len(skus))
        m = self._m
        pooled = self._engine.raw_connection()
        cursor: Any = pooled.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT sku, location_id, on_hand, reserved, safety_stock, source_updated_at_us"
                f" FROM stock WHERE sku IN ({marks})",
                skus,
            )
            for sku, location_id, on_hand, reserved, safety, at in cursor.fetchall():
                if location_id in locations:
                    rows.stock[(sku, location_id)] = StockRow(on_hand, reserved, safety, at)
            cursor.execute(
                "SELECT sku, location_id, SUM(quantity - incoming_quantity) FROM reservation_lines"
                f" WHERE sku IN ({marks}) AND counted AND expires_at_us IS NOT NULL"
                f" AND expires_at_us <= {m} GROUP BY sku, location_id",
                [*skus, now_us],
            )
            for sku, location_id, lapsed in cursor.fetchall():
                row = rows.stock.get((sku, location_id))
                if row is not None and lapsed:
                    rows.stock[(sku, location_id)] = StockRow(
                        row.on_hand,
                        row.reserved - int(lapsed),
                        row.safety_stock,
                        row.source_updated_at_us,
                    )
            cursor.execute(
                "SELECT sku, location_id, quantity, expected_date FROM incoming_lines"
                f" WHERE sku IN ({marks}) AND quantity > 0",
                skus,
            )
            for sku, location_id, quantity, expected in cursor.fetchall():
                if location_id in locations:
                    rows.incoming[(sku, location_id)].append(
                        (date.fromisoformat(expected), int(quantity))
                    )
            cursor.execute(
                "SELECT sku, location_id, SUM(incoming_quantity) FROM reservation_lines"
                f" WHERE sku IN ({marks}) AND counted AND incoming_quantity > 0"
                f" AND (expires_at_us IS NULL OR expires_at_us > {m}) GROUP BY sku, location_id",
                [*skus, now_us],
            )
            for sku, location_id, held in cursor.fetchall():
                if location_id in locations:
                    rows.incoming_held[(sku, location_id)] = int(held)
        finally:
            cursor.close()
            pooled.rollback()
            pooled.close()
        return rows
