"""The stock table's ordered upsert, in SQL for each dialect: the one statement both the
delta path (store/feeds.py) and snapshots (store/snapshots.py) write stock records with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omnistock.server.domain.feed_order import MAX_QUANTITY, MIN_ON_HAND

COLUMNS = (
    "sku, location_id, on_hand, reserved, safety_stock, received_at_us,"
    " source_updated_at_us, source_sequence, on_hand_key, safety_key"
)
_RETURNING = " RETURNING stock.on_hand_key, stock.safety_key"


def upsert(rows: str, *, relative: bool, returning: bool) -> str:
    """INSERT ... ON CONFLICT that sets each field whose stored key is lower.

    ``rows`` is the VALUES or SELECT giving the rows, in COLUMNS order. Each carries the
    update's values and, per field, the packed key to store: on_hand's (with its time and
    sequence) and, when it carries a safety stock, safety stock's.
    """
    on_hand_newer = "excluded.on_hand_key > stock.on_hand_key"
    safety_newer = (
        "(excluded.safety_key IS NOT NULL"
        " AND (stock.safety_key IS NULL OR excluded.safety_key > stock.safety_key))"
    )
    on_hand = "stock.on_hand + excluded.on_hand" if relative else "excluded.on_hand"
    if relative:
        # An adjustment that would leave the range sets nothing; the row still comes
        # back (keys unchanged), which tells it from a stale one (no row).
        in_range = f"({on_hand} BETWEEN {MIN_ON_HAND} AND {MAX_QUANTITY})"
        set_on_hand = f"({on_hand_newer} AND {in_range})"
        set_safety = f"({safety_newer} AND ({in_range} OR NOT {on_hand_newer}))"
    else:
        set_on_hand, set_safety = f"({on_hand_newer})", safety_newer

    def when(condition: str, column: str, value: str) -> str:
        return f"{column} = CASE WHEN {condition} THEN {value} ELSE stock.{column} END"

    sets = [when(set_on_hand, "on_hand", on_hand)]
    sets += [
        when(set_on_hand, c, f"excluded.{c}")
        for c in ("source_updated_at_us", "source_sequence", "on_hand_key")
    ]
    sets += [when(set_safety, c, f"excluded.{c}") for c in ("safety_stock", "safety_key")]
    sets += [when(f"{set_on_hand} OR {set_safety}", "received_at_us", "excluded.received_at_us")]
    return (
        f"INSERT INTO stock ({COLUMNS}) {rows} "
        "ON CONFLICT (sku, location_id) DO UPDATE SET "
        + ", ".join(sets)
        + f" WHERE {on_hand_newer} OR {safety_newer}"
        + (_RETURNING if returning else "")
    )


@dataclass(frozen=True, slots=True)
class Dialect:
    postgres: bool

    @property
    def mark(self) -> str:
        return "%s" if self.postgres else "?"

    def greatest(self, a: str, b: str) -> str:
        # Both ignore NULLs this way: PostgreSQL's GREATEST does; SQLite's max() does not.
        fn = "GREATEST" if self.postgres else "max"
        return f"{fn}(COALESCE({a}, {b}), COALESCE({b}, {a}))"

    def lock_locations(self, cursor: Any, location_ids: Sequence[str]) -> None:
        """Queue behind other writers of these locations' stock (PostgreSQL; SQLite's write
        lock already serialises writers). In sorted order, so two writers cannot deadlock."""
        if self.postgres:
            for location_id in sorted(set(location_ids)):
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    ("omnistock.stock:" + location_id,),
                )
