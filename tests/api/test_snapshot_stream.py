"""ImportSnapshot applies a stream only when its last message says it is complete: gRPC
ends a server's request stream alike when the client closes it and when the call is
cancelled, so the end of the stream alone cannot mean "whole"."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from conftest import NOW
from factories import minutes, store, ts
from omnistock.client import Client, Exposure, from_rpc_error
from omnistock.server.testing import InProcessServer
from omnistock.v1 import feed_pb2, feed_pb2_grpc

STORE = "NL-AMS-01"


@pytest.fixture
def stub(server: InProcessServer, client: Client) -> Iterator[feed_pb2_grpc.FeedServiceStub]:
    client.upsert_locations([store(STORE)])
    client.import_snapshot(STORE, NOW - minutes(30), [("A", 5)])
    with grpc.insecure_channel(server.target) as channel:
        yield feed_pb2_grpc.FeedServiceStub(channel)


def message(*records: tuple[str, int], first: bool = False, complete: bool = False) -> object:
    header = feed_pb2.SnapshotHeader(location_id=STORE, as_of=ts(NOW)) if first else None
    return feed_pb2.ImportSnapshotRequest(
        header=header,
        records=[feed_pb2.SnapshotRecord(sku=sku, on_hand=n) for sku, n in records],
        complete=complete,
    )


def on_hand(client: Client, sku: str) -> int:
    [answer] = client.get_availability(sku, [STORE], exposure=Exposure.EXACT)
    return answer.on_hand


def test_a_stream_that_ends_without_complete_applies_nothing(
    stub: feed_pb2_grpc.FeedServiceStub, client: Client
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ImportSnapshot(iter([message(("A", 1), first=True), message(("B", 2))]))
    error = from_rpc_error(caught.value)
    assert error.reason == "SNAPSHOT_INCOMPLETE"
    assert [v.field for v in error.field_violations] == ["complete"]
    assert on_hand(client, "A") == 5
    assert client.get_feed_status(STORE).snapshot_count == 1


def test_a_stream_whose_last_message_is_complete_applies(
    stub: feed_pb2_grpc.FeedServiceStub, client: Client
) -> None:
    response = stub.ImportSnapshot(
        iter([message(("A", 1), first=True), message(("B", 2), complete=True)])
    )
    assert response.applied_count == 2 and response.zeroed_count == 0
    assert on_hand(client, "A") == 1


def test_no_message_may_follow_the_complete_one(
    stub: feed_pb2_grpc.FeedServiceStub, client: Client
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ImportSnapshot(
            iter([message(("A", 1), first=True, complete=True), message(("B", 2), complete=True)])
        )
    error = from_rpc_error(caught.value)
    assert [v.field for v in error.field_violations] == ["complete"]
    assert on_hand(client, "A") == 5
