"""The change bus's own guarantees: payloads fit NOTIFY, a batch that fails to send is sent
again (for a bounded number of tries), other processes' changes reach this one's subscribers
(its own do not come back), and a receiver that may have missed changes makes its process
forget every copy (RESYNC)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.stock import StockCache
from omnistock.server.service.changes import (
    RESYNC,
    ChangeBus,
    Changes,
    ChannelTransport,
    _Batcher,
    decode,
    encode,
    wal_position,
)
from omnistock.server.store.change_bus import MAX_PAYLOAD_BYTES
from omnistock.server.store.change_bus_sqlite import SqliteChangeLog
from test_stock_cache import at, fill, rec

ids = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=64)


@given(
    locations=st.frozensets(ids, max_size=400),
    pairs=st.frozensets(st.tuples(ids, ids), max_size=400),
    directory=st.booleans(),
    everything=st.booleans(),
    position=st.none() | st.integers(0, 2**64 - 1),
)
def test_payloads_fit_notify_and_say_the_changes_but_resync(
    locations: frozenset[str],
    pairs: frozenset[tuple[str, str]],
    directory: bool,
    everything: bool,
    position: int | None,
) -> None:
    changes = Changes(pairs, locations, directory, everything)
    payloads = encode("me", changes, position)
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    heard = Changes()
    for payload in payloads:
        origin, part = decode(payload)
        assert origin == "me"
        assert wal_position(payload) == position  # every payload carries the WAL position
        heard = heard.merge(part)
    # RESYNC is for the process that missed changes, never for the others.
    assert heard == Changes(pairs, locations, directory)


def test_a_payload_from_before_wal_positions_still_decodes() -> None:
    old = '{"o":"41-ab12cd34","t":1764000000.5,"p":[["PHONE","NL-AMS-01"]],"d":1}'
    assert decode(old) == (
        "41-ab12cd34",
        Changes(frozenset({("PHONE", "NL-AMS-01")}), directory=True),
    )
    assert wal_position(old) is None


def failing(times: int, sent: list[Changes], done: threading.Event | None = None) -> Any:
    """A send that fails ``times`` times first; ``send.left`` counts the failures to come."""
    left = [times]

    def send(changes: Changes) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise ConnectionError("the database went away")
        sent.append(changes)
        if done is not None:
            done.set()

    send.left = left  # type: ignore[attr-defined]
    return send


def until_failed(send: Any) -> None:
    """Wait for every failure ``send`` was made to have, and a moment for the batcher."""
    deadline = time.monotonic() + 5
    while send.left[0] and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.05)


def test_a_batch_that_fails_to_send_is_tried_again_a_moment_later() -> None:
    sent: list[Changes] = []
    done = threading.Event()
    batcher = _Batcher(failing(2, sent, done), linger=0.001, retry=0.02)
    batcher.start()
    try:
        batcher.put(Changes.of_pairs([("S1", "L1")]))
        assert done.wait(5), "the failed batch was never sent again"
    finally:
        batcher.close()
    assert sent == [Changes.of_pairs([("S1", "L1")])]


def test_a_failed_batch_goes_out_merged_with_what_came_after() -> None:
    sent: list[Changes] = []
    send = failing(1, sent)
    batcher = _Batcher(send, linger=0.001, retry=60)  # the next batch carries it
    batcher.start()
    batcher.put(Changes.of_pairs([("S1", "L1")]))
    until_failed(send)
    batcher.put(Changes.of_pairs([("S2", "L1")]))
    batcher.close()
    assert sent == [Changes.of_pairs([("S1", "L1"), ("S2", "L1")])]


def test_a_batch_that_keeps_failing_is_dropped_after_its_tries() -> None:
    sent: list[Changes] = []
    send = failing(3, sent)
    batcher = _Batcher(send, linger=0.001, retry=0.01, attempts=3)
    batcher.start()
    batcher.put(Changes.of_pairs([("S1", "L1")]))
    until_failed(send)  # three tries, then the batch is dropped
    batcher.put(Changes.of_pairs([("S2", "L1")]))
    batcher.close()
    assert sent == [Changes.of_pairs([("S2", "L1")])]


def test_resync_makes_the_read_cache_forget_everything() -> None:
    cache = StockCache()
    cache.fill([(("S1", "L1"), rec(5))], generation=cache.generation)
    fill(cache, "S1", {"L1": at("L1", 5)})
    cache.apply(RESYNC)
    assert cache.get(("S1", "L1")) is None
    assert cache.get_sku("S1") is None
    assert cache.peek_sku("S1") == (None, False)


class Locations:
    """A location repository whose version stamp the test sets."""

    def __init__(self) -> None:
        self.stamp = (1, 1)
        self.loads = 0

    def version(self) -> tuple[int, int]:
        return self.stamp

    def get_all(self) -> list[Any]:
        self.loads += 1
        return []


def test_resync_makes_the_directory_check_its_version_before_the_next_lookup() -> None:
    repository = Locations()
    directory = LocationDirectory(repository, max_age_seconds=3600)  # type: ignore[arg-type]
    directory.refresh()
    directory.apply(RESYNC)
    assert not directory.is_fresh()
    directory.all()
    assert repository.loads == 1  # the stamp stood: nothing to load
    directory.apply(RESYNC)
    repository.stamp = (2, 2)  # a location changed while notices were lost
    directory.all()
    assert repository.loads == 2


class FlakyLog:
    """A change log connection whose first ``failures`` polls fail; later ones find nothing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.driver_connection = self

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return self

    def fetchall(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def ignore(*_: object) -> None:
    pass


def test_a_change_log_poll_after_failed_ones_says_changes_were_missed() -> None:
    for failures, expected in ((0, 0), (3, 1)):
        log = SqliteChangeLog(None, poll_seconds=0.001, origin="me")  # type: ignore[arg-type]
        connection = FlakyLog(failures)
        log._connect = lambda connection=connection: connection  # type: ignore[method-assign]
        missed: list[None] = []
        poller = threading.Thread(target=log._run, args=(ignore, partial(missed.append, None), 0))
        poller.start()
        time.sleep(0.2)
        log._stopping.set()
        poller.join()
        # Rows may have been pruned while the polls failed: said once, when polls work again.
        assert len(missed) == expected


class LoopbackChannel:
    """A change channel on which a process hears its own payloads; a test hands it others'
    through ``receive`` and says some were lost through ``missed``."""

    origin = "me"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.receive: Callable[[str], None] = ignore
        self.missed: Callable[[], None] = ignore

    def start(self, receive: Callable[[str], None], missed: Callable[[], None]) -> None:
        self.receive, self.missed = receive, missed

    def position(self) -> int | None:
        return None  # as on SQLite: no WAL positions

    def send(self, payloads: Sequence[str]) -> None:
        self.sent.extend(payloads)
        for payload in payloads:
            self.receive(payload)

    def close(self) -> None:
        pass


def test_other_processes_changes_reach_subscribers_and_missed_ones_resync() -> None:
    channel = LoopbackChannel()
    bus = ChangeBus(ChannelTransport(channel))
    heard: list[Changes] = []
    bus.subscribe(heard.append)
    bus.start()
    mine = Changes.of_pairs([("S1", "L1")])
    bus.publish(mine)
    bus.close()  # sends what was published
    assert [decode(p) for p in channel.sent] == [("me", mine)]
    assert heard == [mine]  # at once, in process; its echo from the channel is dropped
    theirs = Changes(locations=frozenset({"L2"}), directory=True)
    for payload in encode("other", theirs):
        channel.receive(payload)
    channel.receive("not a payload")  # logged and ignored
    channel.missed()
    assert heard == [mine, theirs, RESYNC]
