"""Every RPC in the contract is a method of both clients, with the same signature and
docstring, and answers through each against a real in-process server: a missing or
mismatched method fails here."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from omnistock.client import AsyncClient, ChannelMethod, Client, ReservationMethod, timestamp
from omnistock.client.testing import SKUS, STORES, WAREHOUSE, WEB_CHANNEL, LocalServer
from omnistock.v1 import (
    availability_pb2,
    channel_pb2,
    common_pb2,
    feed_pb2,
    location_pb2,
    reservation_pb2,
)

AMS, UTR = STORES[0][0], STORES[1][0]
SERVICES = [
    service
    for module in (availability_pb2, channel_pb2, feed_pb2, location_pb2, reservation_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
RPCS = {method.name: method for service in SERVICES for method in service.methods}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _hold(client: Client, key: str) -> str:
    hold = client.create_reservation(
        WAREHOUSE, {SKUS[1]: 1}, method=ReservationMethod.CHECKOUT, idempotency_key=key
    )
    return hold.reservation_id


def _network_hold(client: Client, key: str) -> str:
    hold = client.create_reservation(
        "", {SKUS[1]: 1}, method=ReservationMethod.CHECKOUT, idempotency_key=key,
        channel=WEB_CHANNEL, channel_method=ChannelMethod.PICKUP,
    )  # fmt: skip
    return hold.reservation_id


def _committed(client: Client, key: str) -> str:
    return client.commit_reservation(_hold(client, key)).reservation_id


def _group(client: Client) -> str:
    """A group of the two stores, and a channel selling from it."""
    group = channel_pb2.LocationGroup(
        group_id="stores", display_name="Stores", location_ids=[AMS, UTR]
    )
    client.upsert_location_groups([group])
    client.upsert_channels([_channel(group.group_id)])
    return group.group_id


def _channel(group_id: str) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        channel_id="web",
        display_name="Web shop",
        group_id=group_id,
        protections=[channel_pb2.LocationProtection(location_id=AMS, units=2)],
    )


def _now() -> Any:
    return timestamp(datetime.now(UTC) - timedelta(seconds=1))


def _incoming(location_id: str, line_id: str) -> feed_pb2.IncomingUpdate:
    return feed_pb2.IncomingUpdate(
        location_id=location_id,
        sku=SKUS[0],
        line_id=line_id,
        quantity=24,
        expected_date="2030-01-15",
        source_updated_at=_now(),
    )


def _with_incoming(client: Client, key: str) -> feed_pb2.ListIncomingSupplyRequest:
    client.apply_incoming_updates([_incoming(WAREHOUSE, f"PO-{key}")])
    return feed_pb2.ListIncomingSupplyRequest(sku=SKUS[0], page_size=1)


# One request per RPC (a request stream for the streaming ones), made with a sync client
# for what it needs first; ``key`` tells the sync and the async call apart.
SAMPLES: dict[str, Callable[[Client, str], Any]] = {
    "UpsertLocations": lambda c, k: location_pb2.UpsertLocationsRequest(
        locations=[c.get_location(UTR)]
    ),
    "GetLocation": lambda c, k: location_pb2.GetLocationRequest(location_id=AMS),
    "ListLocations": lambda c, k: location_pb2.ListLocationsRequest(page_size=1),
    "GetAvailability": lambda c, k: availability_pb2.GetAvailabilityRequest(
        sku=SKUS[0], location_ids=[AMS]
    ),
    "BatchGetAvailability": lambda c, k: availability_pb2.BatchGetAvailabilityRequest(
        items=[availability_pb2.SkuLocation(sku=SKUS[0], location_id=AMS)]
    ),
    "SearchNearby": lambda c, k: availability_pb2.SearchNearbyRequest(
        lines=[availability_pb2.CartLine(sku=SKUS[0], quantity=1)],
        origin=availability_pb2.Origin(position=common_pb2.LatLng(latitude=52.37, longitude=4.89)),
    ),
    "GetFulfillmentOptions": lambda c, k: availability_pb2.GetFulfillmentOptionsRequest(
        lines=[availability_pb2.CartLine(sku=SKUS[0], quantity=1)],
        origin=availability_pb2.Origin(position=common_pb2.LatLng(latitude=52.37, longitude=4.89)),
    ),
    "WatchAvailability": lambda c, k: availability_pb2.WatchAvailabilityRequest(
        pairs=[availability_pb2.SkuLocation(sku=SKUS[0], location_id=AMS)]
    ),
    "ApplyStockUpdates": lambda c, k: feed_pb2.ApplyStockUpdatesRequest(
        updates=[
            feed_pb2.StockUpdate(
                location_id=WAREHOUSE, sku=SKUS[2], on_hand=100, source_updated_at=_now()
            )
        ]
    ),
    "ImportSnapshot": lambda c, k: [
        feed_pb2.ImportSnapshotRequest(
            header=feed_pb2.SnapshotHeader(location_id=WAREHOUSE, as_of=_now()),
            records=[feed_pb2.SnapshotRecord(sku=sku, on_hand=100) for sku in SKUS],
            complete=True,
        )
    ],
    "StreamDeltas": lambda c, k: [
        feed_pb2.StreamDeltasRequest(
            batch_id=k,
            records=[
                feed_pb2.DeltaRecord(
                    location_id=WAREHOUSE, sku=SKUS[0], on_hand=100, source_updated_at=_now()
                )
            ],
        )
    ],
    "GetFeedStatus": lambda c, k: feed_pb2.GetFeedStatusRequest(location_id=AMS),
    "ListFeedStatus": lambda c, k: feed_pb2.ListFeedStatusRequest(page_size=1),
    "ExportStock": lambda c, k: feed_pb2.ExportStockRequest(location_id=AMS),
    "ApplyIncomingUpdates": lambda c, k: feed_pb2.ApplyIncomingUpdatesRequest(
        updates=[_incoming(AMS, f"TR-{k}")]
    ),
    "ImportIncomingSnapshot": lambda c, k: feed_pb2.ImportIncomingSnapshotRequest(
        location_id=UTR,
        as_of=_now(),
        lines=[
            feed_pb2.IncomingLine(sku=SKUS[0], line_id=k, quantity=6, expected_date="2030-01-16")
        ],
    ),
    "ListIncomingSupply": _with_incoming,
    "CreateReservation": lambda c, k: reservation_pb2.CreateReservationRequest(
        location_id=WAREHOUSE,
        lines=[reservation_pb2.ReservationLine(sku=SKUS[1], quantity=1)],
        method=reservation_pb2.RESERVATION_METHOD_CHECKOUT,
        idempotency_key=f"create-{k}",
    ),
    "GetReservation": lambda c, k: reservation_pb2.GetReservationRequest(
        reservation_id=_hold(c, f"get-{k}")
    ),
    "ListReservations": lambda c, k: reservation_pb2.ListReservationsRequest(page_size=1),
    "ExtendReservation": lambda c, k: reservation_pb2.ExtendReservationRequest(
        reservation_id=_hold(c, f"extend-{k}"), ttl={"seconds": 600}
    ),
    "CommitReservation": lambda c, k: reservation_pb2.CommitReservationRequest(
        reservation_id=_hold(c, f"commit-{k}")
    ),
    "FulfillReservation": lambda c, k: reservation_pb2.FulfillReservationRequest(
        reservation_id=_committed(c, f"fulfil-{k}")
    ),
    "MoveReservation": lambda c, k: reservation_pb2.MoveReservationRequest(
        reservation_id=_network_hold(c, f"move-{k}"), location_id=UTR
    ),
    "ReleaseReservation": lambda c, k: reservation_pb2.ReleaseReservationRequest(
        reservation_id=_hold(c, f"release-{k}")
    ),
    "UpsertLocationGroups": lambda c, k: channel_pb2.UpsertLocationGroupsRequest(
        groups=[channel_pb2.LocationGroup(group_id=k, display_name=k, location_ids=[AMS])]
    ),
    "GetLocationGroup": lambda c, k: channel_pb2.GetLocationGroupRequest(group_id=_group(c)),
    "ListLocationGroups": lambda c, k: channel_pb2.ListLocationGroupsRequest(page_size=1),
    "UpdateLocationGroupMembers": lambda c, k: channel_pb2.UpdateLocationGroupMembersRequest(
        group_id=_group(c), add_location_ids=[WAREHOUSE], remove_location_ids=[WAREHOUSE]
    ),
    "UpsertChannels": lambda c, k: channel_pb2.UpsertChannelsRequest(
        channels=[_channel(_group(c))]
    ),
    "GetChannel": lambda c, k: channel_pb2.GetChannelRequest(
        channel_id=_channel(_group(c)).channel_id
    ),
    "ListChannels": lambda c, k: channel_pb2.ListChannelsRequest(page_size=1),
}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def test_every_rpc_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(RPCS)


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_both_clients_have_the_method_with_one_signature_and_docstring(rpc: str) -> None:
    sync_method = getattr(Client, snake(rpc))
    async_method = getattr(AsyncClient, snake(rpc))
    sync_params = inspect.signature(sync_method).parameters
    async_params = inspect.signature(async_method).parameters
    assert [(p.name, p.kind, p.default) for p in sync_params.values()] == [
        (p.name, p.kind, p.default) for p in async_params.values()
    ]
    assert "request" in sync_params or "requests" in sync_params
    assert sync_method.__doc__ and sync_method.__doc__ == async_method.__doc__


def _check(rpc: str, result: Any) -> None:
    """The answer is the RPC's response, or what its method unwraps from it."""
    output = RPCS[rpc].output_type
    items = result if isinstance(result, list) else [result]
    assert items, f"{rpc} answered nothing"
    for item in items:
        assert isinstance(item, Message)
        kinds = {output.full_name} | {
            field.message_type.full_name for field in output.fields if field.message_type
        }
        assert item.DESCRIPTOR.full_name in kinds, (rpc, item.DESCRIPTOR.full_name)


def _sync_call(client: Client, rpc: str, sample: Any) -> Any:
    method = getattr(client, snake(rpc))
    streaming_in = RPCS[rpc].client_streaming
    result = method(requests=sample) if streaming_in else method(request=sample)
    if isinstance(result, Message | list):
        return result
    if rpc == "WatchAvailability":
        with result as watch:
            return next(iter(watch))
    return list(result)


async def _async_call(client: AsyncClient, rpc: str, sample: Any) -> Any:
    method = getattr(client, snake(rpc))
    streaming_in = RPCS[rpc].client_streaming
    result = method(requests=sample) if streaming_in else method(request=sample)
    if inspect.isawaitable(result):
        return await result
    if rpc == "WatchAvailability":
        async with result as watch:
            async for message in watch:
                return message
    return [item async for item in result]


@pytest.mark.parametrize("rpc", sorted(RPCS))
def test_every_rpc_answers_through_both_clients(server: LocalServer, rpc: str) -> None:
    with Client(server.target) as client:
        _check(rpc, _sync_call(client, rpc, SAMPLES[rpc](client, "sync")))
        sample = SAMPLES[rpc](client, "async")

    async def main() -> Any:
        async with AsyncClient(server.target) as client:
            return await _async_call(client, rpc, sample)

    _check(rpc, asyncio.run(main()))
