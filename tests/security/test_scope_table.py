"""The scope table (transport.scope) covers every RPC, docs/security.md shows it as it is,
and every RPC called with an out-of-scope key answers as the table says, on both
databases: named locations outside the scope are PERMISSION_DENIED exactly as absent
ones, a hidden reservation is NOT_FOUND exactly as an absent one, and filtered answers
hold nothing hidden."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from factories import store, ts, update
from google.protobuf.duration_pb2 import Duration
from omnistock.server.domain.security import Role
from omnistock.server.transport.scope import METHOD_SCOPES, named_locations
from omnistock.v1 import availability_pb2, channel_pb2, feed_pb2, location_pb2, reservation_pb2
from scoped import (
    ABSENT,
    AMS,
    DAM,
    METHODS,
    NOW,
    UTR,
    WH,
    World,
    incoming,
    protecting_channel,
    scoped_world,
    status_text,
)

DOCS = Path(__file__).parents[2] / "docs" / "security.md"
ABSENT_RESERVATION = "rsv_" + "0" * 26

_cart = [availability_pb2.CartLine(sku="PHONE", quantity=1)]
_origin = availability_pb2.Origin(position=DAM)
_pair = availability_pb2.SkuLocation

# A request naming one location, for every method whose table entry names locations.
NAMED: dict[str, Callable[[str], Any]] = {
    "UpsertLocations": lambda at: location_pb2.UpsertLocationsRequest(locations=[store(at)]),
    "GetLocation": lambda at: location_pb2.GetLocationRequest(location_id=at),
    "GetAvailability": lambda at: availability_pb2.GetAvailabilityRequest(
        sku="PHONE", location_ids=[at]
    ),
    "BatchGetAvailability": lambda at: availability_pb2.BatchGetAvailabilityRequest(
        items=[_pair(sku="PHONE", location_id=at)]
    ),
    "WatchAvailability": lambda at: availability_pb2.WatchAvailabilityRequest(
        pairs=[_pair(sku="PHONE", location_id=at)]
    ),
    "ApplyStockUpdates": lambda at: feed_pb2.ApplyStockUpdatesRequest(
        updates=[update(at, "PHONE", 3, NOW)]
    ),
    "ImportSnapshot": lambda at: feed_pb2.ImportSnapshotRequest(
        header=feed_pb2.SnapshotHeader(location_id=at, as_of=ts(NOW)),
        records=[feed_pb2.SnapshotRecord(sku="PHONE", on_hand=1)],
    ),
    "StreamDeltas": lambda at: feed_pb2.StreamDeltasRequest(
        batch_id="b1",
        records=[
            feed_pb2.DeltaRecord(
                location_id=at, sku="PHONE", adjustment=-1, source_updated_at=ts(NOW)
            )
        ],
    ),
    "GetFeedStatus": lambda at: feed_pb2.GetFeedStatusRequest(location_id=at),
    "ExportStock": lambda at: feed_pb2.ExportStockRequest(location_id=at),
    "ApplyIncomingUpdates": lambda at: feed_pb2.ApplyIncomingUpdatesRequest(
        updates=[incoming(at, "PO-2")]
    ),
    "ImportIncomingSnapshot": lambda at: feed_pb2.ImportIncomingSnapshotRequest(
        location_id=at, as_of=ts(NOW)
    ),
    "ListIncomingSupply": lambda at: feed_pb2.ListIncomingSupplyRequest(location_id=at),
    "CreateReservation": lambda at: reservation_pb2.CreateReservationRequest(
        location_id=at,
        lines=[reservation_pb2.ReservationLine(sku="PHONE", quantity=1)],
        method=reservation_pb2.RESERVATION_METHOD_PICKUP,
    ),
    "ListReservations": lambda at: reservation_pb2.ListReservationsRequest(location_id=at),
    "UpsertLocationGroups": lambda at: channel_pb2.UpsertLocationGroupsRequest(
        groups=[channel_pb2.LocationGroup(group_id="g", display_name="G", location_ids=[at])]
    ),
    "UpdateLocationGroupMembers": lambda at: channel_pb2.UpdateLocationGroupMembersRequest(
        group_id="all", add_location_ids=[at]
    ),
    "UpsertChannels": lambda at: channel_pb2.UpsertChannelsRequest(
        channels=[protecting_channel("web", at)]
    ),
    "MoveReservation": lambda at: reservation_pb2.MoveReservationRequest(
        reservation_id=ABSENT_RESERVATION, location_id=at
    ),
}
# A request naming one reservation.
BY_RESERVATION: dict[str, Callable[[str], Any]] = {
    "GetReservation": lambda r: reservation_pb2.GetReservationRequest(reservation_id=r),
    "ExtendReservation": lambda r: reservation_pb2.ExtendReservationRequest(
        reservation_id=r, ttl=Duration(seconds=60)
    ),
    "CommitReservation": lambda r: reservation_pb2.CommitReservationRequest(reservation_id=r),
    "FulfillReservation": lambda r: reservation_pb2.FulfillReservationRequest(reservation_id=r),
    "ReleaseReservation": lambda r: reservation_pb2.ReleaseReservationRequest(reservation_id=r),
    "MoveReservation": lambda r: reservation_pb2.MoveReservationRequest(reservation_id=r),
}
# A request naming no location, whose answer the scope filters.
FILTERED: dict[str, Any] = {
    "ListLocations": location_pb2.ListLocationsRequest(),
    "GetAvailability": availability_pb2.GetAvailabilityRequest(sku="PHONE"),
    "SearchNearby": availability_pb2.SearchNearbyRequest(
        lines=_cart, origin=_origin, radius_km=200, limit=1
    ),
    "GetFulfillmentOptions": availability_pb2.GetFulfillmentOptionsRequest(
        lines=_cart, origin=_origin, radius_km=200
    ),
    "WatchAvailability": availability_pb2.WatchAvailabilityRequest(
        skus=["PHONE"], origin=availability_pb2.Origin(position=DAM), radius_km=200, limit=1
    ),
    "ListFeedStatus": feed_pb2.ListFeedStatusRequest(),
    "ExportStock": feed_pb2.ExportStockRequest(),
    "ListIncomingSupply": feed_pb2.ListIncomingSupplyRequest(sku="PHONE"),
    "ListReservations": reservation_pb2.ListReservationsRequest(),
    "GetLocationGroup": channel_pb2.GetLocationGroupRequest(group_id="all"),
    "ListLocationGroups": channel_pb2.ListLocationGroupsRequest(),
    "GetChannel": channel_pb2.GetChannelRequest(channel_id="web"),
    "ListChannels": channel_pb2.ListChannelsRequest(),
}


def _name(method: str) -> str:
    return method.rsplit("/", 1)[1]


def test_the_table_covers_every_rpc_of_the_services() -> None:
    assert set(METHOD_SCOPES) == set(METHODS)
    for method, scope in METHOD_SCOPES.items():
        request = METHODS[method].input_type
        for path in scope.names:  # each named field exists in the request
            fields = request
            for part in path.split("."):
                field = fields.fields_by_name[part.removesuffix("[]")]
                fields = field.message_type or fields
        if scope.by_reservation:
            assert "reservation_id" in request.fields_by_name


def test_the_request_factories_cover_the_table() -> None:
    """The out-of-scope test below has a request for every rule of every method."""
    assert {_name(m) for m, s in METHOD_SCOPES.items() if s.names} == set(NAMED)
    assert {_name(m) for m, s in METHOD_SCOPES.items() if s.by_reservation} == set(BY_RESERVATION)
    assert {_name(m) for m, s in METHOD_SCOPES.items() if s.filtered} == set(FILTERED)
    for name, build in NAMED.items():
        [scope] = [s for m, s in METHOD_SCOPES.items() if _name(m) == name]
        request = build(UTR)
        assert UTR in {x for path in scope.names for x in named_locations(request, path)}


def _docs_table() -> dict[str, tuple[str, str]]:
    """docs/security.md's scope table: `Service/Method` -> (role, rule)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in DOCS.read_text().splitlines():
        match = re.fullmatch(r"\| `(\w+/\w+)` \| `(\w+)` \| (.+) \|", line.strip())
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_the_docs_show_the_table_as_the_code_has_it() -> None:
    documented = _docs_table()
    in_code = {
        method.removeprefix("/omnistock.v1."): (scope.role.value, scope.rule)
        for method, scope in METHOD_SCOPES.items()
    }
    assert documented == in_code


@pytest.fixture
def world(database_url: str) -> Any:
    with scoped_world(database_url) as world:
        yield world


def _refused(world: World, method: str, request: Any, key: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        world.call(method, request, key, first_only=True)
    return caught.value  # type: ignore[return-value]


def test_every_rpc_answers_an_out_of_scope_key_as_the_table_says(world: World) -> None:
    """For every role (admin included): a key scoped to AMS."""
    admin = world.key("scoped admin", Role.ADMIN, locations=[AMS])
    hidden = (UTR, WH, world.hidden_reservation)
    failures: list[str] = []
    for method, scope in METHOD_SCOPES.items():
        name = _name(method)
        for key in (admin, world.key(f"scoped {name}", scope.role, locations=[AMS])):
            if scope.names:
                for location in (UTR, WH):
                    seen = _refused(world, method, NAMED[name](location), key)
                    absent = _refused(world, method, NAMED[name](ABSENT), key)
                    if seen.code() is not grpc.StatusCode.PERMISSION_DENIED:
                        failures.append(f"{name} {location}: {seen.code()} {seen.details()}")
                    elif status_text(seen, location) != status_text(absent, ABSENT):
                        failures.append(f"{name}: {location} and an absent id read differently")
            if scope.by_reservation:
                seen = _refused(world, method, BY_RESERVATION[name](world.hidden_reservation), key)
                absent = _refused(world, method, BY_RESERVATION[name](ABSENT_RESERVATION), key)
                if seen.code() is not grpc.StatusCode.NOT_FOUND:
                    failures.append(f"{name}: {seen.code()} {seen.details()}")
                elif status_text(seen, world.hidden_reservation) != status_text(
                    absent, ABSENT_RESERVATION
                ):
                    failures.append(f"{name}: a hidden and an absent reservation read differently")
            if scope.filtered:
                answers = world.call(method, FILTERED[name], key, first_only=True)
                shown = b"".join(answer.SerializeToString() for answer in answers)
                if AMS.encode() not in shown:
                    failures.append(f"{name}: the visible location is missing")
                if any(value.encode() in shown for value in hidden):
                    failures.append(f"{name}: shows a hidden id: {answers}")
                if not all(answer.ByteSize() for answer in answers):
                    failures.append(f"{name}: sent an empty message")
    assert failures == []


def test_a_reservation_request_reads_the_same_for_hidden_and_absent_when_invalid(
    world: World,
) -> None:
    """Validation comes first for both: an invalid TTL is INVALID_ARGUMENT either way."""
    key = world.key("shop-ams", Role.RESERVE, locations=[AMS])
    method = "/omnistock.v1.ReservationService/ExtendReservation"
    answers = [
        status_text(
            _refused(
                world,
                method,
                reservation_pb2.ExtendReservationRequest(
                    reservation_id=r, ttl=Duration(seconds=1, nanos=-5)
                ),
                key,
            ),
            r,
        )
        for r in (world.hidden_reservation, ABSENT_RESERVATION)
    ]
    assert answers[0] == answers[1] and "INVALID_ARGUMENT" in answers[0]
