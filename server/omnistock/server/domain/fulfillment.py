"""Fulfilment: which locations can supply a cart, which options that gives, and how they rank.

Ranking (deterministic, documented in docs/shopping.md): earliest ``complete_by``
(when the whole cart is in the shopper's hands) first; then PICKUP,
SHIP_TO_STORE, SHIP, SPLIT; then the pickup store's distance; then location ids.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.hours import next_opening_on_or_after, ready_by
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


@dataclass(frozen=True, slots=True)
class StoreSupply:
    """A store near the shopper: how far, and for each cart line whether it can supply it."""

    location: Location
    distance_km: float
    supplies: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class ShipSupply:
    """The best shipping location: for each cart line whether it can supply it, and when
    a shipment from it is in the shopper's hands."""

    location: Location
    supplies: tuple[bool, ...]
    delivery: datetime


def fulfillment_options(
    lines: Sequence[CartLine],
    stores: Sequence[StoreSupply],
    ship: ShipSupply | None,
    now: datetime,
) -> list[Option]:
    """Every way to get the whole cart, ranked (``rank``): at most one option a method.

    - PICKUP: of the stores that have every line, the one ready first, then the nearest.
    - SHIP: from ``ship`` when it has every line.
    - SHIP_TO_STORE: that shipment to a store that receives parcels, ready first (from
      the delivery date, or now if later), then nearest.
    - SPLIT: pick up what one store has and ship the rest. Of the stores with some but
      not all lines, and whose missing lines ``ship`` has: most lines, then ready first,
      then nearest.
    """
    options: list[Option] = []
    whole = [
        (ready, store.distance_km, store.location.id, store.location)
        for store in stores
        if store.location.capabilities.pickup
        and all(store.supplies)
        and (ready := ready_by(store.location, now)) is not None
    ]
    if whole:
        ready, distance, _, location = min(whole, key=lambda w: w[:3])
        options.append(
            Option(Method.PICKUP, ready, pickup=location, pickup_lines=tuple(lines),
                   distance_km=distance, ready_by=ready)
        )  # fmt: skip
    if ship is not None and all(ship.supplies):
        day = ship.delivery.date()
        options.append(
            Option(Method.SHIP, ship.delivery, ship_from=ship.location, ship_lines=tuple(lines),
                   delivery=day)
        )  # fmt: skip
        arrival = max(datetime.combine(day, datetime.min.time(), tzinfo=ship.delivery.tzinfo), now)
        receiving = [
            (ready, store.distance_km, store.location)
            for store in stores
            if store.location.capabilities.ship_to_store
            and (ready := ready_by(store.location, arrival)) is not None
        ]
        if receiving:
            ready, distance, location = min(receiving, key=lambda r: (r[0], r[1], r[2].id))
            options.append(
                Option(Method.SHIP_TO_STORE, ready, pickup=location, ship_from=ship.location,
                       ship_lines=tuple(lines), distance_km=distance, ready_by=ready, delivery=day)
            )  # fmt: skip
    if ship is not None:
        shippable = {line.sku for line, ok in zip(lines, ship.supplies, strict=True) if ok}
        partial = []
        for store in stores:
            here = [line for line, ok in zip(lines, store.supplies, strict=True) if ok]
            rest = [line for line, ok in zip(lines, store.supplies, strict=True) if not ok]
            if not (here and rest and store.location.capabilities.pickup):
                continue
            if not all(line.sku in shippable for line in rest):
                continue
            ready = ready_by(store.location, now)
            if ready is not None:
                partial.append(
                    (-len(here), ready, store.distance_km, store.location.id, store.location,
                     here, rest)
                )  # fmt: skip
        if partial:
            _, ready, distance, _, location, here, rest = min(partial, key=lambda p: p[:4])
            options.append(
                Option(Method.SPLIT, max(ready, ship.delivery), pickup=location,
                       ship_from=ship.location, pickup_lines=tuple(here), ship_lines=tuple(rest),
                       distance_km=distance, ready_by=ready, delivery=ship.delivery.date())
            )  # fmt: skip
    return rank(options)
