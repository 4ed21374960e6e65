"""SearchNearby and GetFulfillmentOptions through the SDK, on both databases.

The clock stands at Monday 23 November 2026, 12:00 UTC: 13:00 in Amsterdam.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import store, warehouse
from google.protobuf.duration_pb2 import Duration
from omnistock.client import (
    Client,
    Exposure,
    FulfillmentMethod,
    InvalidArgumentError,
    LatLng,
    NotFoundError,
    StockStatus,
    WeeklyHours,
    cart,
    origin,
)
from omnistock.server.store.postcodes import PostcodeRepository
from omnistock.server.testing import InProcessServer

DAM = origin(latitude=52.3731, longitude=4.8926)  # Dam square, Amsterdam


@pytest.fixture
def shop(client: Client) -> Client:
    client.upsert_locations(
        [
            store(
                "AMS-CENTRAAL",
                position=LatLng(latitude=52.3790, longitude=4.9003),
                postal_code="1012 AB",
            ),
            store(
                "AMS-ZUID",
                position=LatLng(latitude=52.3389, longitude=4.8722),
                postal_code="1077 XV",
            ),
            store("AMS-NOORD", position=LatLng(latitude=52.4006, longitude=4.9319)),
            store("UTRECHT", position=LatLng(latitude=52.0901, longitude=5.1115)),
            store(
                "AMS-SUNDAY-ONLY",
                position=LatLng(latitude=52.3700, longitude=4.8900),
                weekly_hours=[WeeklyHours(day=7, opens="12:00", closes="17:00")],
            ),
            warehouse("WH-TILBURG", position=LatLng(latitude=51.60, longitude=5.05)),
        ]
    )
    for location, records in {
        "AMS-CENTRAAL": [("PHONE", 1), ("CASE", 9)],
        "AMS-ZUID": [("PHONE", 5), ("CASE", 5), ("CHARGER", 4)],
        "AMS-NOORD": [("CHARGER", 2)],
        "UTRECHT": [("PHONE", 9), ("CASE", 9), ("CHARGER", 9)],
        "AMS-SUNDAY-ONLY": [("PHONE", 9), ("CASE", 9)],
        "WH-TILBURG": [("PHONE", 100), ("CASE", 100), ("CHARGER", 100)],
    }.items():
        client.import_snapshot(location, NOW - timedelta(minutes=10), records)
    return client


def test_search_lists_nearby_stores_nearest_first_with_each_line(shop: Client) -> None:
    result = shop.search_nearby(cart({"PHONE": 1, "CASE": 1}), DAM)
    ids = [loc.location_id for loc in result.locations]
    assert ids == ["AMS-SUNDAY-ONLY", "AMS-CENTRAAL", "AMS-ZUID"]  # Noord has neither line
    centraal = result.locations[1]
    assert 0.5 < centraal.distance_km < 1.5
    assert [(line.sku, StockStatus(line.status), line.fulfillable) for line in centraal.lines] == [
        ("PHONE", StockStatus.LIMITED, True),
        ("CASE", StockStatus.IN_STOCK, True),
    ]
    assert centraal.has_all
    assert centraal.ready_by_text == "today 13:30"
    assert (centraal.today_hours.opens, centraal.today_hours.closes) == ("09:00", "18:00")
    assert centraal.open_now and centraal.time_zone == "Europe/Amsterdam"
    assert all(not line.HasField("available_to_sell") for line in centraal.lines)  # banded


def test_a_closed_store_still_answers_with_its_next_ready_time(shop: Client) -> None:
    result = shop.search_nearby(cart({"PHONE": 1}), DAM, limit=1)
    [sunday] = result.locations
    assert sunday.location_id == "AMS-SUNDAY-ONLY"
    assert not sunday.open_now and sunday.today_hours.closed
    assert sunday.ready_by_text == "Sun 29 Nov 12:30"


def test_open_now_and_require_all_filter_the_stores(shop: Client) -> None:
    result = shop.search_nearby(
        cart({"PHONE": 2, "CHARGER": 1}), DAM, open_now=True, require_all=True
    )
    assert [loc.location_id for loc in result.locations] == ["AMS-ZUID"]
    assert result.locations[0].has_all


def test_radius_and_limit_bound_the_answer(shop: Client) -> None:
    wide = shop.search_nearby(cart({"PHONE": 1}), DAM, radius_km=100)
    assert wide.locations[-1].location_id == "UTRECHT"
    narrow = shop.search_nearby(cart({"PHONE": 1}), DAM, radius_km=2)
    assert "AMS-ZUID" not in [loc.location_id for loc in narrow.locations]
    assert len(shop.search_nearby(cart({"PHONE": 1}), DAM, radius_km=100, limit=2).locations) == 2


def test_exact_exposure_shows_available_to_sell(shop: Client) -> None:
    result = shop.search_nearby(cart({"PHONE": 1}), DAM, exposure=Exposure.EXACT, require_all=True)
    zuid = next(loc for loc in result.locations if loc.location_id == "AMS-ZUID")
    assert zuid.lines[0].available_to_sell == 5


def test_the_ship_option_comes_from_the_warehouse_with_a_delivery_date(shop: Client) -> None:
    result = shop.search_nearby(cart({"PHONE": 1, "CHARGER": 3}), DAM)
    assert result.ship.location_id == "WH-TILBURG"
    assert result.ship.has_all and result.ship.delivery_date == "2026-11-24"
    assert result.ship.shipping_days == 1


def test_a_stale_store_reads_unknown_and_is_not_offered(shop: Client, clock: FixedClock) -> None:
    shop.upsert_locations(
        [
            store(
                "AMS-ZUID",
                position=LatLng(latitude=52.3389, longitude=4.8722),
                freshness_budget=Duration(seconds=300),
            )
        ]
    )
    # The 10-minute-old snapshot is past Zuid's new 5-minute freshness budget.
    result = shop.search_nearby(cart({"CHARGER": 1}), DAM, exposure=Exposure.EXACT)
    assert "AMS-ZUID" not in [loc.location_id for loc in result.locations]
    clock.now = NOW - timedelta(minutes=8)
    result = shop.search_nearby(cart({"CHARGER": 1}), DAM)
    assert "AMS-ZUID" in [loc.location_id for loc in result.locations]


def test_search_by_postal_code_uses_the_imported_centroid(
    shop: Client, server: InProcessServer
) -> None:
    assert server.server is not None
    PostcodeRepository(server.server.engine).upsert_many([("NL", "1012 JS", 52.3731, 4.8926)])
    by_code = shop.search_nearby(cart({"PHONE": 1}), origin(postal_code="1012js", country="NL"))
    by_point = shop.search_nearby(cart({"PHONE": 1}), DAM)
    assert [loc.location_id for loc in by_code.locations] == [
        loc.location_id for loc in by_point.locations
    ]
    assert by_code.origin.latitude == pytest.approx(52.3731)


def test_an_unimported_postal_code_falls_back_to_the_locations_own(shop: Client) -> None:
    result = shop.search_nearby(cart({"PHONE": 1}), origin(postal_code="1077XV"))
    assert result.locations[0].location_id == "AMS-ZUID"
    assert result.locations[0].distance_km == 0.0


def test_an_unknown_postal_code_is_not_found(shop: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        shop.search_nearby(cart({"PHONE": 1}), origin(postal_code="9999 ZZ"))
    assert caught.value.reason == "POSTAL_CODE_NOT_FOUND"


def test_an_unknown_sku_is_not_found(shop: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        shop.search_nearby(cart({"PHONE": 1, "NOPE": 1}), DAM)
    assert caught.value.resource_names == ("NOPE",)


@pytest.mark.parametrize(
    ("call", "fields"),
    [
        (
            lambda c: c.search_nearby(cart({"PHONE": 1}), origin(latitude=91, longitude=4.9)),
            {"origin.position.latitude"},
        ),
        (
            lambda c: c.search_nearby(cart({"PHONE": 1}), origin(latitude=52, longitude=181)),
            {"origin.position.longitude"},
        ),
        (lambda c: c.search_nearby(cart({"PHONE": 1}), DAM, radius_km=0), {"radius_km"}),
        (lambda c: c.search_nearby(cart({"PHONE": 1}), DAM, radius_km=-3), {"radius_km"}),
        (lambda c: c.search_nearby(cart({"PHONE": 1}), DAM, radius_km=501), {"radius_km"}),
        (lambda c: c.search_nearby(cart({"PHONE": 1}), DAM, limit=101), {"limit"}),
        (lambda c: c.search_nearby([], DAM), {"lines"}),
        (lambda c: c.search_nearby(cart({"PHONE": 0}), DAM), {"lines[0].quantity"}),
        (lambda c: c.search_nearby(cart({"PHONE": 1}) * 2, DAM), {"lines[1].sku"}),
        (
            lambda c: c.search_nearby(cart({"PHONE": 1}), DAM, method=FulfillmentMethod.SHIP),
            {"method"},
        ),
        (lambda c: c.get_fulfillment_options([], DAM), {"lines"}),
    ],
)
def test_bad_requests_name_each_bad_field(shop: Client, call: object, fields: set[str]) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        call(shop)  # type: ignore[operator]
    assert {v.field for v in caught.value.field_violations} == fields


def test_fulfillment_options_rank_pickup_today_before_shipping(shop: Client) -> None:
    response = shop.get_fulfillment_options(cart({"PHONE": 2, "CHARGER": 1}), DAM)
    methods = [
        (FulfillmentMethod(o.method), o.pickup_location_id, o.ship_location_id)
        for o in response.options
    ]
    assert methods[0] == (FulfillmentMethod.PICKUP, "AMS-ZUID", "")
    assert response.options[0].ready_by_text == "today 13:30"
    assert (FulfillmentMethod.SHIP, "", "WH-TILBURG") in methods
    ship_to_store = next(o for o in response.options if o.method == FulfillmentMethod.SHIP_TO_STORE)
    assert (
        ship_to_store.delivery_date == "2026-11-24"
        and ship_to_store.ready_by_text == "tomorrow 09:30"
    )
    times = [o.complete_by.ToDatetime() for o in response.options]
    assert times == sorted(times)


def test_a_cart_no_store_has_whole_is_split_or_shipped(shop: Client) -> None:
    response = shop.get_fulfillment_options(cart({"CASE": 9, "CHARGER": 3}), DAM, radius_km=5)
    methods = [FulfillmentMethod(o.method) for o in response.options]
    assert FulfillmentMethod.PICKUP not in methods
    split = next(o for o in response.options if o.method == FulfillmentMethod.SPLIT)
    assert split.pickup_location_id == "AMS-CENTRAAL"
    assert [line.sku for line in split.pickup_lines] == ["CASE"]
    assert [line.sku for line in split.ship_lines] == ["CHARGER"]


def test_import_postcodes_loads_centroids_for_searches(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from omnistock.server.cli import main
    from omnistock.server.store.database import create_database_engine

    csv_file = tmp_path / "postcodes.csv"
    csv_file.write_text("postal_code,latitude,longitude\n1012 JS,52.3731,4.8926\n9999,north,5\n")
    url = f"sqlite:///{tmp_path / 'pc.db'}"
    assert main(["import-postcodes", str(csv_file), "--database-url", url]) == 0
    out = capsys.readouterr()
    assert "loaded 1 postal codes, rejected 1" in out.out
    assert "line 3" in out.err
    engine = create_database_engine(url)
    assert PostcodeRepository(engine).lookup("1012js", "nl") == (52.3731, 4.8926)
    engine.dispose()


def test_a_changed_store_shows_at_once(shop: Client) -> None:
    """Answers are kept for the minute, but not past a change to the store itself."""
    before = shop.search_nearby(cart({"PHONE": 1}), DAM, limit=1).locations[0]
    assert (before.location_id, before.name) == ("AMS-SUNDAY-ONLY", "Store AMS-SUNDAY-ONLY")
    assert before.today_hours.closed
    shop.upsert_locations(
        [
            store(
                "AMS-SUNDAY-ONLY",
                name="Sunday and Monday",
                position=LatLng(latitude=52.3700, longitude=4.8900),
                weekly_hours=[WeeklyHours(day=d, opens="12:00", closes="17:00") for d in (1, 7)],
            )
        ]
    )
    after = shop.search_nearby(cart({"PHONE": 1}), DAM, limit=1).locations[0]
    assert after.name == "Sunday and Monday"
    assert (after.today_hours.opens, after.today_hours.closes) == ("12:00", "17:00")
    assert after.open_now and after.ready_by_text == "today 13:30"


def test_stock_stops_being_offered_the_moment_it_goes_stale(
    shop: Client, clock: FixedClock
) -> None:
    """Answers kept for the minute end when a record's age passes its budget, to the
    microsecond: the stores' and the ship option's alike."""
    ten_minutes = Duration(seconds=600)  # the snapshots are exactly this old at NOW
    shop.upsert_locations(
        [
            store(
                "AMS-ZUID",
                position=LatLng(latitude=52.3389, longitude=4.8722),
                freshness_budget=ten_minutes,
            ),
            warehouse(
                "WH-TILBURG",
                position=LatLng(latitude=51.60, longitude=5.05),
                freshness_budget=ten_minutes,
            ),
        ]
    )
    result = shop.search_nearby(cart({"CHARGER": 1}), DAM)
    assert "AMS-ZUID" in [loc.location_id for loc in result.locations]
    assert result.ship.location_id == "WH-TILBURG" and result.ship.has_all
    clock.now = NOW + timedelta(microseconds=1)
    result = shop.search_nearby(cart({"CHARGER": 1}), DAM)
    assert "AMS-ZUID" not in [loc.location_id for loc in result.locations]
    assert not result.ship.has_all
    assert [StockStatus(line.status) for line in result.ship.lines] == [StockStatus.UNKNOWN]
