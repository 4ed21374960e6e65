"""A server that checks keys, with locations a scoped key may and may not see, and a way to
call any RPC by name with any key (the tests of transport.scope's table)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from factories import store, ts, update, warehouse
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_status import rpc_status
from omnistock.client import Client, LatLng
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer
from omnistock.v1 import availability_pb2, channel_pb2, feed_pb2, location_pb2, reservation_pb2

# The scoped keys see AMS only. UTR (a store) and WH (a warehouse) exist and are hidden;
# ABSENT does not exist.
AMS, UTR, WH, ABSENT = "NL-AMS-01", "NL-UTR-01", "NL-WH-02", "NL-NOPE-01"
DAM = LatLng(latitude=52.3731, longitude=4.8926)
UTRECHT = LatLng(latitude=52.0901, longitude=5.1115)
UTR_POSTAL_CODE = "3511 AB"  # only UTR has it, and the postal code table is empty
NOW = datetime.now(UTC)

METHODS: dict[str, MethodDescriptor] = {
    f"/{service.full_name}/{method.name}": method
    for module in (location_pb2, availability_pb2, feed_pb2, reservation_pb2, channel_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}


def incoming(location_id: str, line_id: str) -> feed_pb2.IncomingUpdate:
    """A line of PHONE due at ``location_id``."""
    return feed_pb2.IncomingUpdate(
        location_id=location_id, sku="PHONE", line_id=line_id, quantity=4,
        expected_date="2030-01-15", source_updated_at=ts(NOW - timedelta(minutes=5)),
    )  # fmt: skip


@dataclass
class World:
    server: InProcessServer
    keys: KeyRepository
    channel: grpc.Channel
    hidden_reservation: str  # at UTR
    visible_reservation: str  # at AMS

    def key(
        self,
        name: str,
        *roles: Role,
        locations: list[str] | None = None,
        exposure: Exposure = Exposure.EXACT,
    ) -> str:
        _, text = self.keys.create(
            name, roles, locations=locations, exposure=exposure,
            rate_per_second=10_000.0, burst=10_000, now=NOW,
        )  # fmt: skip
        return text

    def call(self, method: str, request: Any, key: str, *, first_only: bool = False) -> list[Any]:
        """Every response of ``method`` (the first alone with ``first_only``, for watches)."""
        descriptor = METHODS[method]
        reply = message_factory.GetMessageClass(descriptor.output_type)
        metadata = (("authorization", key),)
        options = {
            "request_serializer": lambda m: m.SerializeToString(),
            "response_deserializer": reply.FromString,
        }
        if descriptor.client_streaming:
            requests = iter([request])
            if descriptor.server_streaming:
                stream = self.channel.stream_stream(method, **options)(
                    requests, metadata=metadata, timeout=10
                )
                return list(stream)
            return [
                self.channel.stream_unary(method, **options)(
                    requests, metadata=metadata, timeout=10
                )
            ]
        if descriptor.server_streaming:
            stream = self.channel.unary_stream(method, **options)(
                request, metadata=metadata, timeout=10
            )
            if first_only:
                first = next(stream)
                stream.cancel()
                return [first]
            return list(stream)
        return [self.channel.unary_unary(method, **options)(request, metadata=metadata, timeout=10)]


def protecting_channel(channel_id: str, *protected: str) -> channel_pb2.Channel:
    """A channel of the group "all" keeping a unit back at each of ``protected``."""
    return channel_pb2.Channel(
        channel_id=channel_id,
        display_name=channel_id,
        group_id="all",
        protections=[channel_pb2.LocationProtection(location_id=p, units=1) for p in protected],
    )


def status_text(error: grpc.RpcError, *ids: str) -> str:
    """The whole status (code, message, every detail) as text, each of ``ids`` written as
    "<id>": two answers that read the same this way cannot be told apart."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    text = str(status) if status is not None else f"{error.code()} {error.details()}"
    for value in ids:
        text = text.replace(value, "<id>")
    return text


@contextmanager
def scoped_world(database_url: str) -> Iterator[World]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)
        _, ops = keys.create(
            "ops", [Role.ADMIN], locations=None, exposure=Exposure.EXACT,
            rate_per_second=10_000.0, burst=10_000, now=NOW,
        )  # fmt: skip
        with Client(server.target, api_key=ops) as admin:
            admin.upsert_locations(
                [
                    store(AMS, position=DAM, postal_code="1012 AB"),
                    store(UTR, position=UTRECHT, postal_code=UTR_POSTAL_CODE),
                    warehouse(WH, position=UTRECHT),
                ]
            )
            admin.apply_stock_updates(
                [update(location, "PHONE", 5, NOW - timedelta(minutes=5)) for location in (AMS, UTR, WH)]
            )  # fmt: skip
            # A group of all three, and a channel protecting units at two of them.
            admin.upsert_location_groups(
                [channel_pb2.LocationGroup(group_id="all", display_name="All", location_ids=[AMS, UTR, WH])]
            )  # fmt: skip
            admin.upsert_channels([protecting_channel("web", AMS, UTR)])
            admin.apply_incoming_updates(
                [incoming(location, "PO-1") for location in (AMS, UTR, WH)]
            )
            hidden = admin.create_reservation(UTR, {"PHONE": 1}).reservation_id
            visible = admin.create_reservation(AMS, {"PHONE": 1}).reservation_id
        with grpc.insecure_channel(server.target) as channel:
            yield World(server, keys, channel, hidden, visible)
