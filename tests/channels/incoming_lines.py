"""Incoming supply lines for the tests: the places they go to, and how they read back."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from conftest import NOW
from omnistock.client import Client

WH, AMS, NYC = "NL-WH-01", "NL-AMS-01", "US-NYC-01"
DAY = date(2026, 11, 23)  # NOW's date in Amsterdam and New York alike


def line(
    location_id: str,
    sku: str,
    line_id: str,
    quantity: int,
    expected: date = DAY,
    at: datetime = NOW,
    sequence: int | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "location_id": location_id,
        "sku": sku,
        "line_id": line_id,
        "quantity": quantity,
        "expected_date": expected,
        "source_updated_at": at,
    }
    if sequence is not None:
        fields["source_sequence"] = sequence
    return fields


def listed(client: Client, **where: str) -> list[tuple[str, str, str, int, str, bool]]:
    return [
        (s.location_id, s.sku, s.line_id, s.quantity, s.expected_date, s.counts)
        for s in client.list_incoming_supply(**where)  # type: ignore[arg-type]
    ]
