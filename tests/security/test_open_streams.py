"""Revocation ends open streams too, within the key cache time, idle or not; and a
stream's messages are paid for from the key's rate limit, one token each."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from factories import store, ts, update
from keyring import NOW, Keyring, keyring
from omnistock.client import (
    DeltaRecord,
    Exposure,
    ResourceExhaustedError,
    Retry,
    UnauthenticatedError,
)
from omnistock.server.domain.security import Role
from omnistock.v1 import feed_pb2, feed_pb2_grpc

AMS = "NL-AMS-01"
CACHE_SECONDS = 0.6
# The bound, plus room for a lookup and a busy test machine.
WITHIN = CACHE_SECONDS + 1.5


@pytest.fixture
def ring(database_url: str) -> Iterator[Keyring]:
    with keyring(database_url, key_cache_seconds=CACHE_SECONDS) as ring:
        with ring.client(ring.key("ops", Role.ADMIN, exposure=Exposure.EXACT)) as admin:
            admin.upsert_locations([store(AMS)])
            admin.apply_stock_updates([update(AMS, "PHONE", 5, NOW - timedelta(minutes=5))])
        yield ring


def on_hand(ring: Keyring) -> int:
    with ring.client(ring.key("check", Role.READ, exposure=Exposure.EXACT)) as reader:
        return reader.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].on_hand


def batch(quantity: int) -> list[DeltaRecord]:
    at = ts(NOW + timedelta(seconds=quantity))  # a later quantity is a later update
    return [DeltaRecord(location_id=AMS, sku="PHONE", on_hand=quantity, source_updated_at=at)]


def fed(batches: queue.Queue[list[DeltaRecord] | None]) -> Iterator[list[DeltaRecord]]:
    while (next_batch := batches.get()) is not None:
        yield next_batch


def test_revoking_a_key_refuses_the_next_batch_of_its_open_delta_stream(ring: Keyring) -> None:
    key = ring.key("pos", Role.FEED)
    batches: queue.Queue[list[DeltaRecord] | None] = queue.Queue()
    with ring.client(key) as feeder:
        acks = feeder.stream_deltas(fed(batches), timeout=20)
        batches.put(batch(6))
        assert next(acks).applied_count == 1
        ring.revoke(key)
        time.sleep(WITHIN)
        batches.put(batch(7))
        with pytest.raises(UnauthenticatedError) as caught:
            next(acks)
        batches.put(None)
    assert caught.value.reason == "API_KEY_INVALID"
    assert on_hand(ring) == 6


def test_revoking_a_key_ends_its_idle_delta_stream_within_the_cache_time(ring: Keyring) -> None:
    key = ring.key("pos", Role.FEED)
    batches: queue.Queue[list[DeltaRecord] | None] = queue.Queue()
    with ring.client(key) as feeder:
        acks = feeder.stream_deltas(fed(batches), timeout=20)
        batches.put(batch(6))
        assert next(acks).applied_count == 1
        ring.revoke(key)
        revoked = time.monotonic()
        with pytest.raises(UnauthenticatedError):
            next(acks)  # no batch comes: the stream ends on its own
        batches.put(None)
    assert time.monotonic() - revoked < WITHIN


def test_revoking_a_key_ends_its_watch_within_the_cache_time(ring: Keyring) -> None:
    key = ring.key("kiosk", Role.READ)
    with ring.client(key) as reader:
        watch = reader.watch_availability([("PHONE", AMS)], heartbeat_seconds=300, reconnect=False)
        events = iter(watch)
        next(events)  # the snapshot
        ring.revoke(key)
        revoked = time.monotonic()
        ended: list[BaseException] = []

        def wait_for_the_end() -> None:
            try:
                next(events)
            except BaseException as error:
                ended.append(error)

        waiter = threading.Thread(target=wait_for_the_end)
        waiter.start()
        waiter.join(WITHIN)
        watch.cancel()
        waiter.join(5)
    assert ended and isinstance(ended[0], UnauthenticatedError), ended
    assert time.monotonic() - revoked < WITHIN + 1


def test_revoking_a_key_ends_its_open_snapshot_without_applying_it(
    ring: Keyring, database_url: str
) -> None:
    key = ring.key("pos", Role.FEED)
    messages: queue.Queue[feed_pb2.ImportSnapshotRequest | None] = queue.Queue()

    def requests() -> Iterator[feed_pb2.ImportSnapshotRequest]:
        while (message := messages.get()) is not None:
            yield message

    first = feed_pb2.ImportSnapshotRequest(
        header=feed_pb2.SnapshotHeader(location_id=AMS, as_of=ts(NOW)),
        records=[feed_pb2.SnapshotRecord(sku="PHONE", on_hand=1)],
    )
    # On SQLite an open snapshot holds the one write lock, so the revocation itself would
    # wait for it: there the header comes after the revocation (and is refused).
    header_first = not database_url.startswith("sqlite")
    with grpc.insecure_channel(ring.server.target) as channel:
        call = feed_pb2_grpc.FeedServiceStub(channel).ImportSnapshot.future(
            requests(), metadata=(("authorization", key),), timeout=20
        )
        if header_first:
            messages.put(first)
            time.sleep(0.3)
        ring.revoke(key)
        revoked = time.monotonic()
        if not header_first:
            messages.put(first)
        done = threading.Event()
        call.add_done_callback(lambda _: done.set())
        done.wait(WITHIN)
        elapsed = time.monotonic() - revoked
        messages.put(None)
        error = call.exception()
    assert error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert elapsed < WITHIN
    assert on_hand(ring) == 5


def test_a_key_sent_with_a_trailing_space_stops_with_the_key(ring: Keyring) -> None:
    key = ring.key("kiosk", Role.READ)
    with ring.client(key + " ", retry=Retry(attempts=1)) as spaced, ring.client(key) as plain:
        plain.get_availability("PHONE", [AMS])
        ring.revoke(key)
        time.sleep(CACHE_SECONDS * 0.8)
        spaced.get_availability("PHONE", [AMS])  # the spelling's first call: still cached
        time.sleep(CACHE_SECONDS * 0.2 + 0.2)
        for client in (spaced, plain):
            with pytest.raises(UnauthenticatedError):
                client.get_availability("PHONE", [AMS])


def test_a_stream_pays_for_each_batch_and_is_slowed_to_the_keys_rate(ring: Keyring) -> None:
    # 10 a second, 2 at once: the call takes one token, its first batch rides on it, and
    # each further batch takes one, so 12 batches need about one second.
    key = ring.key("pos", Role.FEED, Role.READ, rate=10.0, burst=2)
    with ring.client(key, retry=Retry(attempts=1)) as feeder:
        started = time.monotonic()
        acks = list(feeder.stream_deltas([batch(10 + n) for n in range(12)], timeout=20))
        elapsed = time.monotonic() - started
        assert [a.applied_count for a in acks] == [1] * 12
        assert elapsed >= 0.8
        # The batches were counted: the bucket is empty.
        with pytest.raises(ResourceExhaustedError) as caught:
            feeder.get_availability("PHONE", [AMS])
    assert caught.value.reason == "RATE_LIMITED" and caught.value.retry_after is not None
    assert caught.value.retry_after > timedelta(0)
    assert on_hand(ring) == 21
