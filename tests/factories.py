"""Small builders for test requests."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from omnistock.client import Capabilities, LatLng, Location, LocationKind, StockUpdate, WeeklyHours


def store(location_id: str = "NL-AMS-01", **overrides: object) -> Location:
    fields: dict[str, object] = {
        "id": location_id,
        "kind": LocationKind.STORE,
        "name": f"Store {location_id}",
        "address": "Kalverstraat 1",
        "postal_code": "1012 AB",
        "country": "NL",
        "position": LatLng(latitude=52.37, longitude=4.89),
        "time_zone": "Europe/Amsterdam",
        "weekly_hours": [WeeklyHours(day=d, opens="09:00", closes="18:00") for d in range(1, 7)],
        "capabilities": Capabilities(pickup=True, ship_to_store=True),
        "pickup_lead_time_minutes": 30,
        "active": True,
    }
    fields.update(overrides)
    return Location(**fields)  # type: ignore[arg-type]


def warehouse(location_id: str = "NL-WH-01", **overrides: object) -> Location:
    fields: dict[str, object] = {
        "kind": LocationKind.WAREHOUSE,
        "capabilities": Capabilities(ship_from=True),
        "shipping_days": 1,
        "weekly_hours": [],
    }
    fields.update(overrides)
    return store(location_id, **fields)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def update(
    location_id: str,
    sku: str,
    on_hand: int,
    at: datetime,
    *,
    sequence: int | None = None,
    safety_stock: int | None = None,
) -> StockUpdate:
    message = StockUpdate(
        location_id=location_id, sku=sku, on_hand=on_hand, source_updated_at=ts(at)
    )
    if sequence is not None:
        message.source_sequence = sequence
    if safety_stock is not None:
        message.safety_stock = safety_stock
    return message


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
