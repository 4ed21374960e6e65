"""The hot-read cache never serves a value older than a write made in this process."""

from __future__ import annotations

from datetime import UTC, datetime

from omnistock.server.domain.stock import StockRecord
from omnistock.server.service.stock_cache import ABSENT, StockCache

AT = datetime(2026, 11, 23, tzinfo=UTC)


def rec(on_hand: int) -> StockRecord:
    return StockRecord("L1", "S1", on_hand, 0, None, AT)


def test_a_filled_value_is_served_until_invalidated() -> None:
    cache = StockCache()
    cache.fill([(("S1", "L1"), rec(5))], generation=cache.generation)
    assert cache.get(("S1", "L1")) == rec(5)
    cache.invalidate([("S1", "L1")])
    assert cache.get(("S1", "L1")) is None


def test_a_read_that_began_before_a_write_does_not_refill_the_old_value() -> None:
    cache = StockCache()
    began = cache.generation  # a reader starts, reads on_hand 5 from the database ...
    cache.invalidate([("S1", "L1")])  # ... a writer commits 7 and invalidates ...
    cache.fill([(("S1", "L1"), rec(5))], generation=began)  # ... the reader's fill is dropped
    assert cache.get(("S1", "L1")) is None


def test_absence_is_cached_too() -> None:
    cache = StockCache()
    cache.fill([(("S1", "L9"), ABSENT)], generation=cache.generation)
    assert cache.get(("S1", "L9")) is ABSENT


def test_size_zero_turns_the_cache_off() -> None:
    cache = StockCache(maxsize=0)
    cache.fill([(("S1", "L1"), rec(5))], generation=cache.generation)
    assert cache.get(("S1", "L1")) is None
