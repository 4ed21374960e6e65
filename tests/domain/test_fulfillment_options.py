"""Which options a cart has: pickup, ship, ship to store and split, from what the stores
near the shopper and the best shipping location can supply (a pure rule, no database)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from omnistock.server.domain.fulfillment import (
    CartLine,
    Method,
    Option,
    ShipSupply,
    StoreSupply,
    delivered_by,
    fulfillment_options,
)
from omnistock.server.domain.locations import Capabilities, Location, LocationKind, WeeklyHours

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=AMS)  # a Monday
CART = [CartLine("PHONE", 1), CartLine("CASE", 1)]


def store(
    location_id: str, *, lead: int = 30, pickup: bool = True, receives: bool = True
) -> Location:
    return Location(
        id=location_id,
        kind=LocationKind.STORE,
        name=location_id,
        time_zone="Europe/Amsterdam",
        latitude=52.37,
        longitude=4.89,
        weekly_hours=tuple(WeeklyHours(d, time(9), time(18)) for d in range(1, 7)),
        capabilities=Capabilities(pickup=pickup, ship_to_store=receives),
        pickup_lead_time_minutes=lead,
    )


WAREHOUSE = Location(
    id="WH",
    kind=LocationKind.WAREHOUSE,
    name="WH",
    time_zone="Europe/Amsterdam",
    latitude=52.0,
    longitude=5.0,
    capabilities=Capabilities(ship_from=True),
    shipping_days=1,
)
TOMORROW = delivered_by(WAREHOUSE, NOW.date().replace(day=24))


def methods(options: list[Option]) -> list[Method]:
    return [option.method for option in options]


def test_pickup_goes_to_the_store_ready_first_then_the_nearest() -> None:
    slow = StoreSupply(store("SLOW", lead=120), 1.0, (True, True))
    fast = StoreSupply(store("FAST", lead=30), 5.0, (True, True))
    near_twin = StoreSupply(store("TWIN", lead=30), 2.0, (True, True))
    options = fulfillment_options(CART, [slow, fast, near_twin], None, NOW)
    assert methods(options) == [Method.PICKUP]
    assert options[0].pickup is not None and options[0].pickup.id == "TWIN"
    assert options[0].ready_by == NOW.replace(hour=10, minute=30)


def test_a_store_missing_a_line_gives_no_pickup_and_no_split_without_shipping() -> None:
    some = StoreSupply(store("SOME"), 1.0, (True, False))
    assert fulfillment_options(CART, [some], None, NOW) == []


def test_ship_and_ship_to_store_come_from_a_shipper_that_has_every_line() -> None:
    receiving = StoreSupply(store("RECV", pickup=False), 3.0, (False, False))
    ship = ShipSupply(WAREHOUSE, (True, True), TOMORROW)
    options = fulfillment_options(CART, [receiving], ship, NOW)
    assert methods(options) == [Method.SHIP_TO_STORE, Method.SHIP]
    to_store = options[0]
    assert to_store.pickup is not None and to_store.pickup.id == "RECV"
    # Ready the morning it arrives: opening (09:00) plus the lead time.
    assert to_store.ready_by == TOMORROW.replace(hour=9, minute=30)


def test_split_picks_up_what_a_store_has_and_ships_the_rest() -> None:
    most = StoreSupply(store("MOST"), 8.0, (True, False))
    ship = ShipSupply(WAREHOUSE, (False, True), TOMORROW)
    options = fulfillment_options(CART, [most], ship, NOW)
    assert methods(options) == [Method.SPLIT]
    split = options[0]
    assert [line.sku for line in split.pickup_lines] == ["PHONE"]
    assert [line.sku for line in split.ship_lines] == ["CASE"]
    assert split.complete_by == TOMORROW


def test_no_split_when_the_shipper_lacks_what_the_store_lacks() -> None:
    most = StoreSupply(store("MOST"), 8.0, (True, False))
    ship = ShipSupply(WAREHOUSE, (True, False), TOMORROW)
    assert fulfillment_options(CART, [most], ship, NOW) == []


def test_options_rank_by_when_the_cart_is_complete() -> None:
    whole = StoreSupply(store("WHOLE"), 2.0, (True, True))
    partial = StoreSupply(store("PART"), 1.0, (True, False))
    ship = ShipSupply(WAREHOUSE, (True, True), TOMORROW)
    options = fulfillment_options(CART, [whole, partial], ship, NOW)
    assert methods(options) == [Method.PICKUP, Method.SHIP_TO_STORE, Method.SHIP, Method.SPLIT]
    assert [o.complete_by for o in options] == sorted(o.complete_by for o in options)
