"""Committed holds the store's own stock now shows: settled inside a feed's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def settle_committed_holds(
    cursor: Any, mark: str, location_ids: Sequence[str], now_us: int
) -> list[tuple[str, str]]:
    """Stop counting committed holds whose record a feed has updated since the commit:
    the store's own stock now shows the sale. Runs inside the feed's transaction.
    Returns the (sku, location_id) pairs whose reserved changed."""
    if not location_ids:
        return []
    marks = ", ".join([mark] * len(location_ids))
    cursor.execute(
        "SELECT l.reservation_id, l.sku, l.location_id, l.quantity FROM reservations r"
        " JOIN reservation_lines l ON l.reservation_id = r.id"
        " JOIN stock s ON s.sku = l.sku AND s.location_id = l.location_id"
        f" WHERE r.location_id IN ({marks}) AND r.state = 'COMMITTED' AND r.holds_stock"
        " AND l.counted AND l.incoming_quantity = 0 AND s.source_updated_at_us > r.committed_at_us",
        tuple(location_ids),
    )
    lines = cursor.fetchall()
    if not lines:
        return []
    cursor.executemany(
        f"UPDATE reservation_lines SET counted = FALSE WHERE reservation_id = {mark} AND sku = {mark}",
        [(rid, sku) for rid, sku, _, _ in lines],
    )
    cursor.executemany(
        f"UPDATE stock SET reserved = reserved - {mark} WHERE sku = {mark} AND location_id = {mark}",
        sorted((q, sku, loc) for _, sku, loc, q in lines),
    )
    ids = sorted({rid for rid, _, _, _ in lines})
    cursor.executemany(
        f"UPDATE reservations SET holds_stock = FALSE, ended_at_us = {mark} WHERE id = {mark}"
        " AND NOT EXISTS (SELECT 1 FROM reservation_lines l"
        " WHERE l.reservation_id = reservations.id AND l.counted)",
        [(now_us, rid) for rid in ids],
    )
    return [(sku, loc) for _, sku, loc, _ in lines]
