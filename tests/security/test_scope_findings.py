"""What a scoped key could once do or learn, one test each, on both databases: change
locations outside its scope, tell hidden ids from absent ones, see another key's
reservation through an idempotency key, learn a hidden store's position from its postal
code, lose its watch's places to hidden stores, and count hidden locations in an export."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from factories import store, update
from omnistock.client import (
    Client,
    NotFoundError,
    PermissionDeniedError,
    cart,
    origin,
)
from omnistock.server.domain.security import Role
from omnistock.v1 import availability_pb2, feed_pb2
from scoped import (
    ABSENT,
    AMS,
    DAM,
    NOW,
    UTR,
    UTR_POSTAL_CODE,
    UTRECHT,
    WH,
    World,
    scoped_world,
    status_text,
)

WATCH = "/omnistock.v1.AvailabilityService/WatchAvailability"
EXPORT = "/omnistock.v1.FeedService/ExportStock"


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scoped_world(database_url) as world:
        yield world


def _client(world: World, key: str) -> Client:
    return Client(world.server.target, api_key=key)


def _ops(world: World) -> Client:
    return _client(world, world.key("ops too", Role.ADMIN))


def test_a_scoped_admin_changes_no_location_outside_its_scope(world: World) -> None:
    with _client(world, world.key("admin-ams", Role.ADMIN, locations=[AMS])) as admin:
        for change in (store(UTR, name="Renamed", active=False), store("NL-NEW-01")):
            with pytest.raises(PermissionDeniedError) as caught:
                admin.upsert_locations([change])
            assert caught.value.reason == "LOCATION_NOT_IN_SCOPE"
        # Its own location it may replace.
        [saved] = admin.upsert_locations([store(AMS, position=DAM, name="Dam Square")])
        assert saved.name == "Dam Square"
    with _ops(world) as ops:
        hidden = ops.get_location(UTR)
        assert (hidden.name, hidden.active) == (f"Store {UTR}", True)
        with pytest.raises(NotFoundError):
            ops.get_location("NL-NEW-01")


def test_a_scoped_admin_may_not_create_a_location_even_one_its_scope_names(world: World) -> None:
    key = world.key("admin-new", Role.ADMIN, locations=[AMS, "NL-NEW-01"])
    with _client(world, key) as admin, pytest.raises(PermissionDeniedError) as caught:
        admin.upsert_locations([store(AMS, position=DAM), store("NL-NEW-01")])
    assert caught.value.reason == "LOCATION_CREATE_NOT_ALLOWED"
    with _ops(world) as ops, pytest.raises(NotFoundError):
        ops.get_location("NL-NEW-01")


def test_watching_a_hidden_pair_reads_as_watching_an_absent_one(world: World) -> None:
    key = world.key("kiosk-ams", Role.READ, locations=[AMS])
    answers = []
    for location in (UTR, ABSENT):
        request = availability_pb2.WatchAvailabilityRequest(
            pairs=[availability_pb2.SkuLocation(sku="PHONE", location_id=location)]
        )
        with pytest.raises(grpc.RpcError) as caught:
            world.call(WATCH, request, key, first_only=True)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        answers.append(status_text(caught.value, location))  # type: ignore[arg-type]
    assert answers[0] == answers[1]


def test_the_same_idempotency_key_from_two_keys_makes_two_reservations(world: World) -> None:
    first = world.key("checkout-1", Role.RESERVE, locations=[AMS])
    second = world.key("checkout-2", Role.RESERVE, locations=[AMS])
    with _client(world, first) as one, _client(world, second) as two:
        mine = one.create_reservation(AMS, {"PHONE": 1}, idempotency_key="basket-0")
        # A different request with the same key: not ALREADY_EXISTS naming the other's.
        theirs = two.create_reservation(AMS, {"PHONE": 2}, idempotency_key="basket-0")
        assert theirs.reservation_id != mine.reservation_id
        assert [line.quantity for line in theirs.lines] == [2]
        # Each key's retry still finds its own.
        again = one.create_reservation(AMS, {"PHONE": 1}, idempotency_key="basket-0")
        assert again.reservation_id == mine.reservation_id
        assert (
            two.create_reservation(AMS, {"PHONE": 2}, idempotency_key="basket-0").reservation_id
            == theirs.reservation_id
        )


def test_a_postal_code_only_a_hidden_store_has_reads_as_unknown(world: World) -> None:
    where = origin(postal_code=UTR_POSTAL_CODE)
    with _client(world, world.key("partner-ams", Role.READ, locations=[AMS])) as partner:
        refusals = []
        for code in (UTR_POSTAL_CODE, "9999 ZZ"):  # the hidden store's, and nobody's
            with pytest.raises(NotFoundError) as caught:
                partner.search_nearby(cart({"PHONE": 1}), origin(postal_code=code))
            refusals.append((caught.value.reason, str(caught.value).replace(code, "<code>")))
        assert refusals[0] == refusals[1]
        assert refusals[0][0] == "POSTAL_CODE_NOT_FOUND"
        with pytest.raises(NotFoundError):
            partner.get_fulfillment_options(cart({"PHONE": 1}), where)
        with pytest.raises(grpc.RpcError) as raw:
            world.call(
                WATCH,
                availability_pb2.WatchAvailabilityRequest(
                    skus=["PHONE"], origin=availability_pb2.Origin(postal_code=UTR_POSTAL_CODE)
                ),
                world.key("kiosk", Role.READ, locations=[AMS]),
                first_only=True,
            )
        assert raw.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    # A key that may see the store is centred on it.
    with _ops(world) as ops:
        found = ops.search_nearby(cart({"PHONE": 1}), where)
        assert (found.origin.latitude, found.origin.longitude) == (
            UTRECHT.latitude,
            UTRECHT.longitude,
        )


def test_a_sku_only_a_hidden_store_reported_reads_as_unknown(world: World) -> None:
    with _ops(world) as ops:
        ops.apply_stock_updates([update(UTR, "SECRET", 4, NOW)])
    with _client(world, world.key("partner", Role.READ, locations=[AMS])) as partner:
        calls = [
            lambda sku: partner.get_availability(sku, [AMS]),
            lambda sku: partner.get_availability(sku),
            lambda sku: partner.batch_get_availability([(sku, AMS)]),
            lambda sku: partner.search_nearby(
                cart({sku: 1}), origin(latitude=52.37, longitude=4.89)
            ),
            lambda sku: partner.get_fulfillment_options(
                cart({sku: 1}), origin(latitude=52.37, longitude=4.89)
            ),
        ]
        for call in calls:
            refusals = []
            for sku in ("SECRET", "NOSUCH"):  # a hidden store's sku, and nobody's
                with pytest.raises(NotFoundError) as caught:
                    call(sku)
                refusals.append((caught.value.reason, str(caught.value).replace(sku, "<sku>")))
            assert refusals[0] == refusals[1]
            assert refusals[0][0] == "SKU_NOT_FOUND"


def test_a_watch_near_an_origin_counts_only_stores_in_scope_toward_its_limit(
    world: World,
) -> None:
    """AMS is the store nearest the Dam, but this key sees only UTR."""
    request = availability_pb2.WatchAvailabilityRequest(
        skus=["PHONE"], origin=availability_pb2.Origin(position=DAM), radius_km=100, limit=1
    )
    [snapshot] = world.call(
        WATCH, request, world.key("kiosk-utr", Role.READ, locations=[UTR]), first_only=True
    )
    assert [(a.sku, a.location_id) for a in snapshot.availabilities] == [("PHONE", UTR)]


def test_an_export_of_every_location_leaves_hidden_ones_out_entirely(world: World) -> None:
    key = world.key("export-ams", Role.FEED, locations=[AMS])
    messages = world.call(EXPORT, feed_pb2.ExportStockRequest(), key)
    assert [[a.location_id for a in m.availabilities] for m in messages] == [[AMS]]
    everything = world.call(EXPORT, feed_pb2.ExportStockRequest(), world.key("all", Role.FEED))
    assert {a.location_id for m in everything for a in m.availabilities} == {AMS, UTR, WH}
