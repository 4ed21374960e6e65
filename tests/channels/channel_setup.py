"""Shared set-up for channel answer tests: a small network with a `web` channel, written
the way the admin, incoming and hold paths write it, each announcing its change on the
server's change bus as those paths do."""

from __future__ import annotations

from datetime import date, datetime

import grpc
from conftest import NOW
from factories import store, warehouse
from omnistock.client import Capabilities, Client, LatLng
from omnistock.server.domain.channels import Channel, ChannelMethod, LocationGroup
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.service.changes import Changes
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.incoming import IncomingStore, IncomingUpdate
from omnistock.server.store.tables import reservation_lines_table, reservations_table
from omnistock.server.testing import InProcessServer
from omnistock.v1 import availability_pb2, availability_pb2_grpc, channel_pb2
from sqlalchemy import insert

W1, S1, S2 = "W1", "S1", "S2"  # a warehouse, a store that ships, a pickup-only store


def network(client: Client) -> None:
    client.upsert_locations(
        [
            warehouse(W1, time_zone="UTC", position=LatLng(latitude=52.0, longitude=5.0)),
            store(
                S1,
                time_zone="UTC",
                capabilities=Capabilities(pickup=True, ship_from=True),
            ),
            store(S2, time_zone="UTC", capabilities=Capabilities(pickup=True)),
        ]
    )


def web(
    server: InProcessServer,
    *,
    protection: dict[str, int] | None = None,
    default_protection: int = 2,
    sells_incoming: bool = True,
    methods: frozenset[ChannelMethod] = frozenset(ChannelMethod),
    channel_id: str = "web",
    members: tuple[str, ...] = (W1, S1, S2),
) -> None:
    """The `web` channel over every location, stores keeping 2 back by default (the
    warehouse none)."""
    running = server.server
    assert running is not None
    repo = ChannelRepository(running.engine)
    repo.upsert_groups([LocationGroup("all", "All", frozenset(members))], now=NOW)
    repo.upsert_channels(
        [
            Channel(
                channel_id,
                "Web",
                "all",
                protection={W1: 0, **(protection or {})},
                default_protection=default_protection,
                sells_incoming=sells_incoming,
                methods=methods,
            )
        ],
        now=NOW,
    )
    running.changes.publish(Changes(channels=True))


def incoming(
    server: InProcessServer, location_id: str, sku: str, line_id: str, quantity: int, due: date
) -> None:
    running = server.server
    assert running is not None
    IncomingStore(running.engine).apply(
        [IncomingUpdate(location_id, sku, line_id, quantity, due, to_micros(NOW))],
        now_us=to_micros(NOW),
    )
    running.changes.publish(Changes(incoming=frozenset({(sku, location_id)})))


def pre_order(
    server: InProcessServer,
    hold_id: str,
    location_id: str,
    sku: str,
    quantity: int,
    expires: datetime,
    *,
    state: str = "ACTIVE",
) -> None:
    """A pre-order hold's line taking ``quantity`` of the incoming at a location."""
    running = server.server
    assert running is not None
    with running.engine.begin() as connection:
        connection.execute(
            insert(reservations_table),
            {
                "id": hold_id,
                "location_id": location_id,
                "method": "SHIP",
                "state": state,
                "owner": "",
                "fingerprint": "x" * 64,
                "customer_reference": "",
                "created_at_us": to_micros(NOW),
                "expires_at_us": to_micros(expires),
                "holds_stock": True,
                "channel_id": "web",
                "channel_method": "SHIP",
            },
        )
        connection.execute(
            insert(reservation_lines_table),
            {
                "reservation_id": hold_id,
                "sku": sku,
                "location_id": location_id,
                "quantity": quantity,
                # As store.reservations writes a hold's lines: counted, with the hold's expiry
                # while it is active and none once committed.
                "counted": True,
                "expires_at_us": to_micros(expires) if state == "ACTIVE" else None,
                "incoming_quantity": quantity,
            },
        )
    running.changes.publish(Changes(pairs=frozenset({(sku, location_id)})))


class Channels:
    """GetAvailability and BatchGetAvailability with channels, over gRPC."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = availability_pb2_grpc.AvailabilityServiceStub(self._channel)

    def get(
        self,
        sku: str,
        channel_id: str = "web",
        *,
        method: int = 0,
        quantity: int = 0,
        exact: bool = True,
        location_ids: tuple[str, ...] = (),
    ) -> channel_pb2.ChannelAvailability:
        response = self._stub.GetAvailability(
            availability_pb2.GetAvailabilityRequest(
                sku=sku,
                channel_id=channel_id,
                method=method,  # type: ignore[arg-type]
                quantity=quantity,
                exposure=exposure(exact),
                location_ids=location_ids,
            )
        )
        return response.channel_availability

    def batch(
        self, items: list[channel_pb2.SkuChannel], *, exact: bool = True
    ) -> availability_pb2.BatchGetAvailabilityResponse:
        return self._stub.BatchGetAvailability(
            availability_pb2.BatchGetAvailabilityRequest(
                channel_items=items, exposure=exposure(exact)
            )
        )

    def close(self) -> None:
        self._channel.close()


def exposure(exact: bool) -> int:
    from omnistock.v1 import common_pb2

    return common_pb2.EXPOSURE_EXACT if exact else common_pb2.EXPOSURE_BANDED
