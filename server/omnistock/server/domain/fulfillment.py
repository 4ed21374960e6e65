"""Fulfilment: which locations can supply a cart, and how the options rank.

Ranking (deterministic, documented in docs/shopping.md): earliest ``complete_by``
(when the whole cart is in the shopper's hands) first; then PICKUP,
SHIP_TO_STORE, SHIP, SPLIT; then the pickup store's distance; then location ids.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.hours import next_opening_on_or_after
from omnistock.server.domain.locations import Location
from omnistock.server.domain.stock import AvailabilityView, StockStatus

# A shipment counts as in the shopper's hands at this local time of its delivery date.
DELIVERED_AT = time(18, 0)


class Method(enum.IntEnum):
    PICKUP = 1
    SHIP = 2
    SHIP_TO_STORE = 3
    SPLIT = 4


RANK = {Method.PICKUP: 0, Method.SHIP_TO_STORE: 1, Method.SHIP: 2, Method.SPLIT: 3}


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    quantity: int


def can_supply(view: AvailabilityView, quantity: int, ats: int) -> bool:
    """A line is fulfillable when its stock is fresh and covers the quantity."""
    return view.status is not StockStatus.UNKNOWN and ats >= quantity


def delivery_date(ship_from: Location, now: datetime) -> date:
    """Dispatch at the next opening (today if open now), then ``shipping_days`` to deliver.

    A location with no hours at all ships every day.
    """
    zone = ZoneInfo(ship_from.time_zone)
    if ship_from.weekly_hours or ship_from.hours_exceptions:
        opening = next_opening_on_or_after(ship_from, now)
        dispatch = (opening or now).astimezone(zone).date()
    else:
        dispatch = now.astimezone(zone).date()
    return dispatch + timedelta(days=ship_from.shipping_days)


def delivered_by(ship_from: Location, day: date) -> datetime:
    return datetime.combine(day, DELIVERED_AT, tzinfo=ZoneInfo(ship_from.time_zone))


@dataclass(frozen=True, slots=True)
class Option:
    method: Method
    complete_by: datetime
    pickup: Location | None = None
    ship_from: Location | None = None
    pickup_lines: tuple[CartLine, ...] = ()
    ship_lines: tuple[CartLine, ...] = ()
    distance_km: float = 0.0
    ready_by: datetime | None = None
    delivery: date | None = None

    def sort_key(self) -> tuple[object, ...]:
        return (
            self.complete_by,
            RANK[self.method],
            self.distance_km,
            self.pickup.id if self.pickup else "",
            self.ship_from.id if self.ship_from else "",
        )


def rank(options: list[Option]) -> list[Option]:
    return sorted(options, key=Option.sort_key)
