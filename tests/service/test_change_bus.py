"""The change bus's own guarantees: a batch that fails to send is sent again, and a
receiver that may have missed changes makes its process forget every copy."""

from __future__ import annotations

import threading
import time

from omnistock.server.service.changes import RESYNC, Changes, _Batcher
from omnistock.server.service.stock_cache import StockCache
from test_stock_cache import at, fill, rec


def test_a_batch_that_fails_to_send_is_sent_again_with_the_next() -> None:
    sent: list[Changes] = []
    failures = iter([True])
    done = threading.Event()

    def send(changes: Changes) -> None:
        if next(failures, False):
            raise ConnectionError("the database went away")
        sent.append(changes)
        done.set()

    batcher = _Batcher(send, linger=0.001, retry=0.05)
    batcher.start()
    try:
        batcher.put(Changes.of_pairs([("S1", "L1")]))
        assert done.wait(5), "the failed batch was never sent again"
    finally:
        batcher.close()
    assert sent == [Changes.of_pairs([("S1", "L1")])]


def test_a_failed_batch_goes_out_merged_with_what_came_after() -> None:
    sent: list[Changes] = []
    fail = threading.Event()
    fail.set()

    def send(changes: Changes) -> None:
        if fail.is_set():
            fail.clear()
            raise ConnectionError("the database went away")
        sent.append(changes)

    batcher = _Batcher(send, linger=0.001, retry=60)  # no timed retry: the next batch carries it
    batcher.start()
    batcher.put(Changes.of_pairs([("S1", "L1")]))
    deadline = time.monotonic() + 5
    while fail.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)
    batcher.put(Changes.of_pairs([("S2", "L1")]))
    batcher.close()
    assert sent == [Changes.of_pairs([("S1", "L1"), ("S2", "L1")])]


def test_resync_makes_the_read_cache_forget_everything() -> None:
    cache = StockCache()
    cache.fill([(("S1", "L1"), rec(5))], generation=cache.generation)
    fill(cache, "S1", {"L1": at("L1", 5)})
    cache.apply(RESYNC)
    assert cache.get(("S1", "L1")) is None
    assert cache.get_sku("S1") is None
    assert cache.peek_sku("S1") == (None, False)


def test_resync_is_never_sent_to_other_processes() -> None:
    from omnistock.server.service.changes import encode

    assert RESYNC and encode("me", RESYNC) == []
