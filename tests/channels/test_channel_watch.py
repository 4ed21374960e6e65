"""WatchAvailability of sku x channel pairs through the SDK, on both databases: the first
state, a change when the band (or, for EXACT callers, the quantity) changes, time-only
changes (the watch wakes at its answers' valid_until), and resuming."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from channel_setup import S1, W1, network, web
from conftest import NOW, FixedClock
from factories import update
from omnistock.client import (
    AvailabilityWatch,
    Client,
    NotFoundError,
    WatchAvailabilityResponse,
    WatchEventKind,
)
from omnistock.server.testing import InProcessServer
from omnistock.v1 import availability_pb2, channel_pb2, common_pb2

WatchAvailabilityRequest = availability_pb2.WatchAvailabilityRequest

BEFORE = NOW - timedelta(minutes=5)


@pytest.fixture
def shop(client: Client, server: InProcessServer) -> Client:
    network(client)
    web(server)
    client.apply_stock_updates(
        [update(W1, "PHONE", 10, BEFORE), update(S1, "PHONE", 5, BEFORE - timedelta(hours=1))]
    )
    return client


class Reader:
    def __init__(self, watch: AvailabilityWatch) -> None:
        self.watch = watch
        self.messages: queue.Queue[WatchAvailabilityResponse | BaseException] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for message in self.watch:
                self.messages.put(message)
        except BaseException as error:
            self.messages.put(error)

    def next_change(self, timeout: float = 10) -> WatchAvailabilityResponse:
        deadline = time.monotonic() + timeout
        while True:
            item = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, BaseException):
                raise item
            if item.kind != WatchEventKind.HEARTBEAT:
                return item


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    opened: list[Reader] = []
    yield opened
    for reader in opened:
        reader.watch.cancel()


def watch_channel(
    shop: Client, readers: list[Reader], *, exact: bool = True, resume_token: str = ""
) -> Reader:
    request = WatchAvailabilityRequest(
        channel_pairs=[channel_pb2.SkuChannel(sku="PHONE", channel_id="web")],
        exposure=common_pb2.EXPOSURE_EXACT if exact else common_pb2.EXPOSURE_BANDED,
        heartbeat_seconds=1,
        resume_token=resume_token,
    )
    reader = Reader(shop.watch_availability(request=request, reconnect=False))
    readers.append(reader)
    return reader


def fulfil(message: WatchAvailabilityResponse) -> list[int]:
    return [a.available_to_fulfil for a in message.channel_availabilities]


def test_the_first_message_is_every_channel_pairs_answer(
    shop: Client, readers: list[Reader]
) -> None:
    first = watch_channel(shop, readers).next_change()
    assert first.kind == WatchEventKind.SNAPSHOT
    assert fulfil(first) == [10 + 3]


def test_exact_watchers_hear_a_quantity_change_of_the_channel(
    shop: Client, readers: list[Reader]
) -> None:
    reader = watch_channel(shop, readers)
    reader.next_change()
    shop.apply_stock_updates([update(S1, "PHONE", 8, NOW)])
    change = reader.next_change()
    assert change.kind == WatchEventKind.CHANGE and fulfil(change) == [10 + 6]


def test_banded_watchers_hear_only_band_changes(shop: Client, readers: list[Reader]) -> None:
    reader = watch_channel(shop, readers, exact=False)
    reader.next_change()
    shop.apply_stock_updates([update(S1, "PHONE", 8, NOW)])  # still IN_STOCK
    later = NOW + timedelta(minutes=1)
    shop.apply_stock_updates([update(W1, "PHONE", 0, later), update(S1, "PHONE", 3, later)])
    change = reader.next_change()
    assert [a.status for a in change.channel_availabilities] == [common_pb2.STOCK_STATUS_LIMITED]


def test_a_record_going_stale_wakes_the_watch_without_a_write(
    shop: Client, readers: list[Reader], clock: FixedClock
) -> None:
    reader = watch_channel(shop, readers)
    first = reader.next_change()
    until = first.channel_availabilities[0].valid_until.ToDatetime().replace(tzinfo=NOW.tzinfo)
    clock.now = until  # the store's record is stale now: only the warehouse counts
    change = reader.next_change()
    assert change.kind == WatchEventKind.CHANGE and fulfil(change) == [10]


def test_a_resumed_channel_stream_says_only_what_changed(
    shop: Client, readers: list[Reader]
) -> None:
    first = watch_channel(shop, readers).next_change()
    readers.pop().watch.cancel()
    resumed = watch_channel(shop, readers, resume_token=first.resume_token).next_change()
    assert resumed.kind == WatchEventKind.CHANGE and not resumed.channel_availabilities
    readers.pop().watch.cancel()
    shop.apply_stock_updates([update(W1, "PHONE", 1, NOW)])
    again = watch_channel(shop, readers, resume_token=first.resume_token).next_change()
    assert fulfil(again) == [1 + 3]


def test_watching_an_unknown_channel_is_not_found(shop: Client, readers: list[Reader]) -> None:
    request = WatchAvailabilityRequest(
        channel_pairs=[channel_pb2.SkuChannel(sku="PHONE", channel_id="kiosk")]
    )
    reader = Reader(shop.watch_availability(request=request, reconnect=False))
    readers.append(reader)
    with pytest.raises(NotFoundError):
        reader.next_change()
