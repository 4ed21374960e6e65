"""WatchAvailability through the SDK, on both databases: the first state, changes by band
or quantity, heartbeats, resuming, and what writes of every kind make it say."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from conftest import NOW
from factories import store, update
from omnistock.client import (
    AvailabilityWatch,
    Client,
    Exposure,
    InvalidArgumentError,
    LatLng,
    NotFoundError,
    StockStatus,
    WatchAvailabilityResponse,
    WatchEventKind,
    origin,
)
from omnistock.server.testing import InProcessServer

AMS, UTR = "NL-AMS-01", "NL-UTR-01"
BEFORE = NOW - timedelta(minutes=5)


@pytest.fixture
def shop(client: Client) -> Client:
    client.upsert_locations(
        [
            store(AMS, position=LatLng(latitude=52.37, longitude=4.89)),
            store(UTR, position=LatLng(latitude=52.09, longitude=5.12)),
        ]
    )
    client.apply_stock_updates(
        [
            update(AMS, "PHONE", 5, BEFORE),
            update(AMS, "CASE", 9, BEFORE),
            update(UTR, "PHONE", 1, BEFORE),
        ]
    )
    return client


class Reader:
    """Reads a watch on a thread, so a test can wait for the next message with a timeout."""

    def __init__(self, watch: AvailabilityWatch) -> None:
        self.watch = watch
        self.messages: queue.Queue[WatchAvailabilityResponse | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for message in self.watch:
                self.messages.put(message)
        except BaseException as error:  # handed to the test
            self.messages.put(error)

    def next(self, timeout: float = 10) -> WatchAvailabilityResponse:
        item = self.messages.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def next_change(self, timeout: float = 10) -> WatchAvailabilityResponse:
        while True:
            message = self.next(timeout)
            if message.kind != WatchEventKind.HEARTBEAT:
                return message

    def quiet(self, seconds: float) -> bool:
        """True if nothing but heartbeats came for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.messages.get(timeout=left)
            except queue.Empty:
                return True
            if isinstance(item, BaseException) or item.kind != WatchEventKind.HEARTBEAT:
                return False
        return True


@pytest.fixture
def watching(shop: Client) -> Iterator[list[Reader]]:
    readers: list[Reader] = []
    yield readers
    for reader in readers:
        reader.watch.cancel()


def open_watch(shop: Client, readers: list[Reader], *args: object, **kwargs: object) -> Reader:
    reader = Reader(shop.watch_availability(*args, **kwargs))  # type: ignore[arg-type]
    readers.append(reader)
    return reader


def states(message: WatchAvailabilityResponse) -> list[tuple[str, str, str, int]]:
    return [
        (a.sku, a.location_id, StockStatus(a.status).name, a.available_to_sell)
        for a in message.availabilities
    ]


def test_the_first_message_is_the_state_of_every_pair(shop: Client, watching: list[Reader]) -> None:
    reader = open_watch(
        shop, watching, [("PHONE", AMS), ("PHONE", UTR), ("NEVER", AMS)], exposure=Exposure.EXACT
    )
    first = reader.next()
    assert first.kind == WatchEventKind.SNAPSHOT
    assert states(first) == [
        ("PHONE", AMS, "IN_STOCK", 5),
        ("PHONE", UTR, "LIMITED", 1),
        ("NEVER", AMS, "OUT_OF_STOCK", 0),
    ]
    assert first.resume_token


def test_exact_watchers_hear_every_quantity_change_and_banded_ones_only_bands(
    shop: Client, watching: list[Reader]
) -> None:
    exact = open_watch(shop, watching, [("PHONE", AMS)], exposure=Exposure.EXACT)
    banded = open_watch(shop, watching, [("PHONE", AMS)], exposure=Exposure.BANDED)
    exact.next(), banded.next()
    shop.apply_stock_updates([update(AMS, "PHONE", 4, NOW - timedelta(minutes=4))])
    assert states(exact.next_change()) == [("PHONE", AMS, "IN_STOCK", 4)]
    assert banded.quiet(0.5)  # 4 is still IN_STOCK
    shop.apply_stock_updates([update(AMS, "PHONE", 2, NOW - timedelta(minutes=3))])
    assert states(exact.next_change()) == [("PHONE", AMS, "LIMITED", 2)]
    change = banded.next_change()
    assert change.kind == WatchEventKind.CHANGE
    assert states(change) == [("PHONE", AMS, "LIMITED", 0)]  # banded: no count
    # A write to a pair nobody watches says nothing.
    shop.apply_stock_updates([update(AMS, "CASE", 1, NOW - timedelta(minutes=3))])
    assert exact.quiet(0.5)


def test_holds_and_snapshots_show_in_the_stream(shop: Client, watching: list[Reader]) -> None:
    reader = open_watch(shop, watching, [("PHONE", AMS), ("CASE", AMS)], exposure=Exposure.EXACT)
    reader.next()
    hold = shop.create_reservation(AMS, {"PHONE": 2})
    assert states(reader.next_change()) == [("PHONE", AMS, "IN_STOCK", 3)]
    shop.release_reservation(hold.reservation_id)
    assert states(reader.next_change()) == [("PHONE", AMS, "IN_STOCK", 5)]
    shop.import_snapshot(AMS, NOW - timedelta(minutes=1), [("PHONE", 5), ("CASE", 0)])
    assert states(reader.next_change()) == [("CASE", AMS, "OUT_OF_STOCK", 0)]


def test_heartbeats_when_nothing_changes(shop: Client, watching: list[Reader]) -> None:
    reader = open_watch(shop, watching, [("PHONE", AMS)], heartbeat_seconds=1)
    reader.next()
    beat = reader.next(timeout=5)
    assert beat.kind == WatchEventKind.HEARTBEAT and not beat.availabilities
    assert beat.resume_token


def test_a_resumed_stream_says_only_what_changed_meanwhile(
    shop: Client, watching: list[Reader]
) -> None:
    pairs = [("PHONE", AMS), ("CASE", AMS), ("PHONE", UTR)]
    first = open_watch(shop, watching, pairs, exposure=Exposure.EXACT)
    token = first.next().resume_token
    first.watch.cancel()
    shop.apply_stock_updates([update(UTR, "PHONE", 7, NOW - timedelta(minutes=1))])
    again = open_watch(shop, watching, pairs, exposure=Exposure.EXACT, resume_token=token)
    resumed = again.next()
    assert resumed.kind == WatchEventKind.CHANGE
    assert states(resumed) == [("PHONE", UTR, "IN_STOCK", 7)]
    # Nothing changed: a resumed stream says so with an empty CHANGE.
    quiet = open_watch(
        shop, watching, pairs, exposure=Exposure.EXACT, resume_token=resumed.resume_token
    )
    nothing = quiet.next()
    assert nothing.kind == WatchEventKind.CHANGE and not nothing.availabilities


def test_a_slow_reader_skips_to_the_latest_state(shop: Client, server: InProcessServer) -> None:
    # 1,000 watched pairs make each message about 60 KB: a reader that does not read fills
    # the stream's HTTP/2 flow-control window (fixed at 64 KB here: no BDP probing), and
    # the server then keeps only the latest state of each pair, not a backlog.
    skus = [f"SKU-{i:04d}" for i in range(1_000)]
    writes = 30

    def batch(version: int) -> list[object]:
        at = BEFORE + timedelta(seconds=version)
        return [update(AMS, sku, 10 + version, at) for sku in skus]

    shop.apply_stock_updates(batch(0))  # type: ignore[arg-type]
    channel = grpc.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)])
    slow = Client(server.target, channel=channel)
    with slow.watch_availability([(sku, AMS) for sku in skus], exposure=Exposure.EXACT) as watch:
        stream = iter(watch)
        assert len(next(stream).availabilities) == 1_000
        for version in range(1, writes + 1):
            shop.apply_stock_updates(batch(version))  # type: ignore[arg-type]
        messages = 0
        latest: dict[str, int] = {}
        while set(latest.values()) != {10 + writes} or len(latest) < 1_000:
            message = next(stream)
            messages += 1
            latest.update({a.sku: a.available_to_sell for a in message.availabilities})
    channel.close()
    assert messages < writes / 2


def test_skus_near_an_origin_watch_the_nearest_stores(shop: Client, watching: list[Reader]) -> None:
    reader = open_watch(
        shop, watching, skus=["PHONE"], origin=origin(latitude=52.36, longitude=4.88), limit=1,
        exposure=Exposure.EXACT,
    )  # fmt: skip
    assert states(reader.next()) == [("PHONE", AMS, "IN_STOCK", 5)]


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({}, ["pairs"]),
        ({"pairs": [("bad sku!", AMS)]}, ["pairs[0].sku"]),
        ({"pairs": [("PHONE", AMS)], "heartbeat_seconds": 0}, ["heartbeat_seconds"]),
        ({"pairs": [("PHONE", AMS)], "resume_token": "not-a-token"}, ["resume_token"]),
        ({"skus": ["PHONE"]}, ["origin"]),
        (
            {"skus": ["PHONE"], "origin": origin(latitude=52.3, longitude=4.8), "limit": 99},
            ["limit"],
        ),
    ],
)
def test_bad_requests_get_field_violations(
    shop: Client, kwargs: dict[str, object], fields: list[str]
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        next(iter(shop.watch_availability(**kwargs)))  # type: ignore[arg-type]
    assert [v.field for v in caught.value.field_violations] == fields


def test_an_unknown_location_is_not_found(shop: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        next(iter(shop.watch_availability([("PHONE", "NL-NOPE-01")])))
    assert caught.value.reason == "LOCATION_NOT_FOUND"
