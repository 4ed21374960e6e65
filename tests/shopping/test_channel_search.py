"""SearchNearby and GetFulfillmentOptions through a channel, through the SDK on SQLite and
PostgreSQL: only the group's stores are listed, with channel quantities (after
protection); the ship option comes from the group's locations that ship; a short line in
a channel that sells incoming says from when it can be had."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import FixedClock
from omnistock.client import (
    Client,
    Exposure,
    FulfillmentMethod,
    NotFoundError,
    origin,
)
from omnistock.server.testing import InProcessServer

sys.path.insert(0, str(Path(__file__).parent.parent / "reservations"))
from network_shop import Shop

HERE = origin(latitude=52.37, longitude=4.89)


@pytest.fixture
def shop(server: InProcessServer, client: Client, clock: FixedClock) -> Iterator[Shop]:
    yield Shop(server, client, clock)


def test_a_channel_search_lists_only_the_groups_stores_with_protected_quantities(
    shop: Shop,
) -> None:
    shop.stores("IN-1", "IN-2", "OUT")
    shop.stock({("IN-1", "A"): 5, ("IN-2", "A"): 2, ("OUT", "A"): 9})
    shop.channel("IN-1", "IN-2", protection={"IN-1": 2, "IN-2": 2})
    found = shop.client.search_nearby({"A": 1}, HERE, channel="web", exposure=Exposure.EXACT)
    listed = {loc.location_id: loc.lines[0] for loc in found.locations}
    assert set(listed) == {"IN-1"}  # IN-2 keeps both units back; OUT is not in the group
    assert listed["IN-1"].available_to_sell == 3
    # Without the channel, every store and its own ATS.
    plain = shop.client.search_nearby({"A": 1}, HERE, exposure=Exposure.EXACT)
    assert {loc.location_id: loc.lines[0].available_to_sell for loc in plain.locations} == {
        "IN-1": 5,
        "IN-2": 2,
        "OUT": 9,
    }


def test_the_ship_option_comes_from_the_channels_ship_from_locations_only(shop: Shop) -> None:
    shop.stores("S1")
    shop.warehouses("W-IN", "W-OUT")
    shop.stock({("S1", "A"): 1, ("W-IN", "A"): 3, ("W-OUT", "A"): 90})
    shop.channel("S1", "W-IN")
    found = shop.client.search_nearby({"A": 1}, HERE, channel="web", exposure=Exposure.EXACT)
    assert found.ship.location_id == "W-IN" and found.ship.lines[0].available_to_sell == 3
    options = shop.client.get_fulfillment_options({"A": 2}, HERE, channel="web")
    ships = [o for o in options.options if o.method == FulfillmentMethod.SHIP]
    assert [o.ship_location_id for o in ships] == ["W-IN"]
    assert all(o.pickup_location_id in ("", "S1") for o in options.options)


def test_a_short_line_says_from_when_it_can_be_had_when_the_channel_sells_incoming(
    shop: Shop,
) -> None:
    shop.stores("S1", ship=True)
    shop.stock({("S1", "A"): 1, ("S1", "B"): 4})
    due = shop.today() + timedelta(days=9)
    shop.incoming("S1", "A", "tr-1", 5, due)
    shop.channel("S1", sells_incoming=True)
    found = shop.client.search_nearby({"A": 3, "B": 1}, HERE, channel="web")
    (store,) = found.locations
    a, b = store.lines
    assert (a.fulfillable, a.available_from) == (False, due.isoformat())
    assert a.available_from_text == f"available from {due.day} {due:%b}"
    assert (b.fulfillable, b.available_from, b.available_from_text) == (True, "", "")
    # A channel that does not sell incoming gives no date.
    shop.channel("S1", sells_incoming=False)
    (store,) = shop.client.search_nearby({"A": 3, "B": 1}, HERE, channel="web").locations
    assert store.lines[0].available_from == ""


def test_an_unknown_channel_is_not_found(shop: Shop) -> None:
    shop.stores("S1")
    shop.stock({("S1", "A"): 1})
    with pytest.raises(NotFoundError) as missing:
        shop.client.search_nearby({"A": 1}, HERE, channel="nope")
    assert missing.value.reason == "CHANNEL_NOT_FOUND"
    with pytest.raises(NotFoundError):
        shop.client.get_fulfillment_options({"A": 1}, HERE, channel="nope")


def test_ship_to_store_is_ready_when_an_incoming_transfer_lands_at_the_stores_opening(
    shop: Shop,
) -> None:
    shop.stores("S1")
    shop.stock({("S1", "A"): 0})
    due = shop.today() + timedelta(days=4)
    shop.incoming("S1", "A", "tr-1", 3, due)
    shop.channel("S1", sells_incoming=True)
    (option,) = shop.client.get_fulfillment_options({"A": 2}, HERE, channel="web").options
    assert option.method == FulfillmentMethod.SHIP_TO_STORE
    assert (option.pickup_location_id, option.delivery_date) == ("S1", due.isoformat())
    opens = due if due.isoweekday() != 7 else due + timedelta(days=1)  # closed on Sundays
    ready = option.ready_by.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo("Europe/Amsterdam"))
    assert (ready.date(), ready.strftime("%H:%M")) == (opens, "09:00")
    # More than the transfer brings: no such option.
    assert not shop.client.get_fulfillment_options({"A": 4}, HERE, channel="web").options
    # A channel that does not sell incoming offers none.
    shop.channel("S1", sells_incoming=False)
    assert not shop.client.get_fulfillment_options({"A": 2}, HERE, channel="web").options
