"""Channel answers for a key without the EXACT grant, on both databases: the banded cap on
the quantity asked (as for cart lines), and no count in what it gets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from channel_setup import S1, W1, network, web
from conftest import NOW, FixedClock
from factories import update
from omnistock.client import Client
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import DEFAULT_BANDED_MAX_QUANTITY
from omnistock.server.domain.stock import Exposure as DomainExposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer
from omnistock.v1 import availability_pb2, availability_pb2_grpc, channel_pb2, common_pb2


@pytest.fixture
def banded_stub(
    database_url: str, clock: FixedClock
) -> Iterator[availability_pb2_grpc.AvailabilityServiceStub]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config, clock=clock) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)
        _, admin_key = keys.create(
            "admin", [Role.ADMIN], locations=None, exposure=DomainExposure.EXACT,
            rate_per_second=1000.0, burst=1000, now=NOW,
        )  # fmt: skip
        _, reader_key = keys.create(
            "reader", [Role.READ], locations=None, exposure=DomainExposure.BANDED,
            rate_per_second=1000.0, burst=1000, now=NOW,
        )  # fmt: skip
        _, scoped_key = keys.create(
            "scoped", [Role.READ], locations=[S1], exposure=DomainExposure.BANDED,
            rate_per_second=1000.0, burst=1000, now=NOW,
        )  # fmt: skip
        with Client(server.target, api_key=admin_key) as admin:
            network(admin)
            web(server)
            admin.apply_stock_updates(
                [update(W1, "PHONE", 10, NOW - timedelta(minutes=5)), update(S1, "PHONE", 5, NOW)]
            )
        channel = grpc.intercept_channel(grpc.insecure_channel(server.target), _Bearer(reader_key))
        scoped = grpc.intercept_channel(grpc.insecure_channel(server.target), _Bearer(scoped_key))
        SCOPED[:] = [availability_pb2_grpc.AvailabilityServiceStub(scoped)]
        yield availability_pb2_grpc.AvailabilityServiceStub(channel)
        channel.close()
        scoped.close()


# The stub of a key scoped to S1 and bound to no channel, set by the fixture.
SCOPED: list[availability_pb2_grpc.AvailabilityServiceStub] = []


class _Bearer(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, key: str) -> None:
        self._key = key

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self._key}")]
        return continuation(details._replace(metadata=metadata), request)


def ask(
    stub: availability_pb2_grpc.AvailabilityServiceStub, quantity: int
) -> channel_pb2.ChannelAvailability:
    return stub.GetAvailability(
        availability_pb2.GetAvailabilityRequest(
            sku="PHONE", channel_id="web", quantity=quantity, exposure=common_pb2.EXPOSURE_BANDED
        )
    ).channel_availability


def test_a_banded_key_gets_the_band_and_no_count(
    banded_stub: availability_pb2_grpc.AvailabilityServiceStub,
) -> None:
    answer = ask(banded_stub, DEFAULT_BANDED_MAX_QUANTITY)
    assert answer.exposure == common_pb2.EXPOSURE_BANDED and answer.quantity_hint == "3+"
    assert not answer.HasField("available_to_fulfil") and not answer.locations
    assert answer.fulfillable  # 13 cover the 10 asked


def test_a_banded_key_may_not_ask_past_the_cap(
    banded_stub: availability_pb2_grpc.AvailabilityServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as call:
        ask(banded_stub, DEFAULT_BANDED_MAX_QUANTITY + 1)
    assert call.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "quantity" in call.value.details()  # type: ignore[attr-defined]
    batch = availability_pb2.BatchGetAvailabilityRequest(
        channel_items=[
            channel_pb2.SkuChannel(
                sku="PHONE", channel_id="web", quantity=DEFAULT_BANDED_MAX_QUANTITY + 1
            )
        ]
    )
    with pytest.raises(grpc.RpcError) as call:
        banded_stub.BatchGetAvailability(batch)
    assert "channel_items[0].quantity" in call.value.details()  # type: ignore[attr-defined]


def test_a_key_scoped_to_locations_and_no_channel_may_not_ask_a_channel(
    banded_stub: availability_pb2_grpc.AvailabilityServiceStub,
) -> None:
    # A channel's answer sums locations outside the key's scope.
    with pytest.raises(grpc.RpcError) as call:
        ask(SCOPED[0], 1)
    assert call.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "CHANNEL_NOT_IN_SCOPE" in str(call.value.trailing_metadata())  # type: ignore[attr-defined]
