"""Page tokens: a scoped key walking every list one item a page sees each visible item once,
only those, on full pages, through tokens that hold no hidden id; tokens are signed, bound
to the key and the request, and good on every server of one database."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from factories import store, update
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from omnistock.client import Client
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.testing import InProcessServer
from omnistock.v1 import channel_pb2, feed_pb2, location_pb2, reservation_pb2
from scoped import AMS, METHODS, NOW, UTR, WH, World, incoming, protecting_channel, scoped_world

# Ids interleave, so a hidden location falls between every two visible ones.
VISIBLE = [AMS, "NL-A-02", "NL-Z-09"]
HIDDEN = [UTR, WH, "NL-B-05", "NL-M-07"]

LIST_LOCATIONS = "/omnistock.v1.LocationService/ListLocations"
LIST_FEED_STATUS = "/omnistock.v1.FeedService/ListFeedStatus"
LIST_RESERVATIONS = "/omnistock.v1.ReservationService/ListReservations"
LIST_GROUPS = "/omnistock.v1.ChannelService/ListLocationGroups"
LIST_CHANNELS = "/omnistock.v1.ChannelService/ListChannels"
# The scoped world's group and channel, and two more of each.
GROUPS = ["all", "g-a", "g-b"]
CHANNELS = ["web", "web-a", "web-b"]
LIST_INCOMING = "/omnistock.v1.FeedService/ListIncomingSupply"


@dataclass(frozen=True)
class Listing:
    request: Callable[[str], Any]  # page token -> request of one item a page
    ids: Callable[[Any], list[str]]


LISTS = {
    LIST_LOCATIONS: Listing(
        lambda token: location_pb2.ListLocationsRequest(page_size=1, page_token=token),
        lambda response: [location.id for location in response.locations],
    ),
    LIST_FEED_STATUS: Listing(
        lambda token: feed_pb2.ListFeedStatusRequest(page_size=1, page_token=token),
        lambda response: [status.location_id for status in response.statuses],
    ),
    LIST_RESERVATIONS: Listing(
        lambda token: reservation_pb2.ListReservationsRequest(page_size=1, page_token=token),
        lambda response: [r.reservation_id for r in response.reservations],
    ),
    LIST_GROUPS: Listing(
        lambda token: channel_pb2.ListLocationGroupsRequest(page_size=1, page_token=token),
        lambda response: [group.group_id for group in response.groups],
    ),
    LIST_CHANNELS: Listing(
        lambda token: channel_pb2.ListChannelsRequest(page_size=1, page_token=token),
        lambda response: [channel.channel_id for channel in response.channels],
    ),
    # One line of PHONE at every location.
    LIST_INCOMING: Listing(
        lambda token: feed_pb2.ListIncomingSupplyRequest(
            sku="PHONE", page_size=1, page_token=token
        ),
        lambda response: [line.location_id for line in response.lines],
    ),
}


@dataclass
class Lists:
    world: World
    reservations: dict[str, str]  # reservation id -> location id

    @property
    def hidden_ids(self) -> list[str]:
        return HIDDEN + [r for r, at in self.reservations.items() if at in HIDDEN]

    def visible(self, method: str) -> list[str]:
        if method == LIST_RESERVATIONS:
            return sorted(r for r, at in self.reservations.items() if at in VISIBLE)
        if method == LIST_GROUPS:
            return GROUPS
        if method == LIST_CHANNELS:
            return CHANNELS
        return sorted(VISIBLE)


@pytest.fixture
def lists(database_url: str) -> Iterator[Lists]:
    with scoped_world(database_url) as world:
        key = world.key("ops", Role.ADMIN)
        more = ["NL-A-02", "NL-Z-09", "NL-B-05", "NL-M-07"]
        with Client(world.server.target, api_key=key) as ops:
            ops.upsert_locations([store(location) for location in more])
            ops.apply_stock_updates(
                [update(at, "PHONE", 50, NOW - timedelta(minutes=1)) for at in VISIBLE + HIDDEN]
            )
            ops.apply_incoming_updates([incoming(at, "PO-1") for at in more])
            reservations = {
                world.hidden_reservation: UTR,
                world.visible_reservation: AMS,
            }
            for at in sorted(VISIBLE + HIDDEN) * 2:
                reservations[ops.create_reservation(at, {"PHONE": 1}).reservation_id] = at
            ops.upsert_location_groups(
                [channel_pb2.LocationGroup(group_id=g, display_name=g) for g in GROUPS[1:]]
            )
            ops.upsert_channels([protecting_channel(c, AMS, UTR) for c in CHANNELS[1:]])
        yield Lists(world, reservations)


def _walk(world: World, method: str, key: str) -> tuple[list[list[str]], list[str]]:
    """Every page's ids and every token, from the first page to the last."""
    pages, tokens, token = [], [], ""
    while True:
        [response] = world.call(method, LISTS[method].request(token), key)
        pages.append(LISTS[method].ids(response))
        token = response.next_page_token
        if not token:
            return pages, tokens
        tokens.append(token)
        assert len(pages) < 100


def _decoded(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_every_paginated_rpc_is_walked_here() -> None:
    paginated = {m for m, d in METHODS.items() if "page_token" in d.input_type.fields_by_name}
    assert paginated == set(LISTS)


def test_a_scoped_key_walks_every_list_seeing_each_visible_item_once(lists: Lists) -> None:
    world = lists.world
    key = world.key("partner", Role.READ, Role.FEED, Role.RESERVE, locations=VISIBLE)
    for method in LISTS:
        pages, tokens = _walk(world, method, key)
        # Full pages, each visible id exactly once, nothing hidden.
        assert pages == [[item] for item in lists.visible(method)], method
        for token in tokens:
            for hidden in lists.hidden_ids:
                assert hidden.encode() not in _decoded(token) and hidden not in token


def _page_token_violation(error: grpc.RpcError) -> list[str]:
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [violation.field for violation in bad.field_violations]
    return fields


def test_a_bad_altered_or_borrowed_token_is_invalid_argument(lists: Lists) -> None:
    world = lists.world
    mine = world.key("partner", Role.READ, Role.FEED, locations=VISIBLE)
    other = world.key("partner too", Role.READ, Role.FEED, locations=VISIBLE)
    [first] = world.call(LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(""), mine)
    token = first.next_page_token
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    plain = base64.urlsafe_b64encode(UTR.encode()).decode().rstrip("=")  # the old format
    stores = location_pb2.ListLocationsRequest(page_size=1, kind=location_pb2.LOCATION_KIND_STORE)
    [by_kind] = world.call(LIST_LOCATIONS, stores, mine)
    attempts = [
        (LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(token), other),  # another key's
        (LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(altered), mine),
        (LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(plain), mine),
        (LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request("not a token!"), mine),
        # Another filter, another list.
        (LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(by_kind.next_page_token), mine),
        (LIST_FEED_STATUS, LISTS[LIST_FEED_STATUS].request(token), mine),
    ]
    for method, request, key in attempts:
        with pytest.raises(grpc.RpcError) as caught:
            world.call(method, request, key)
        assert _page_token_violation(caught.value) == ["page_token"]  # type: ignore[arg-type]
    # The token is good for the key it was made for.
    [second] = world.call(LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(token), mine)
    assert [loc.id for loc in second.locations] == [sorted(VISIBLE)[1]]


def test_a_token_from_one_server_is_good_on_another_of_the_same_database(
    lists: Lists, database_url: str
) -> None:
    world = lists.world
    key = world.key("partner", Role.READ, locations=VISIBLE)
    [first] = world.call(LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(""), key)
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as replica, grpc.insecure_channel(replica.target) as channel:
        other = World(replica, world.keys, channel, "", "")
        [second] = other.call(
            LIST_LOCATIONS, LISTS[LIST_LOCATIONS].request(first.next_page_token), key
        )
    assert [loc.id for loc in [*first.locations, *second.locations]] == sorted(VISIBLE)[:2]
