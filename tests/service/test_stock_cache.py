"""The hot-read cache never serves a value older than a write made in this process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from omnistock.server.domain.stock import StockRecord
from omnistock.server.readmodel import stock as stock_module
from omnistock.server.readmodel.stock import ABSENT, SkuRecords, StockCache

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


def test_a_write_to_another_key_does_not_drop_a_fill() -> None:
    """Under a steady feed some key is always being written: a fill is dropped only for
    the keys written since its read began."""
    cache = StockCache()
    began = cache.generation
    cache.invalidate([("S2", "L1"), ("S1", "L2")])  # other keys written meanwhile
    cache.fill([(("S1", "L1"), rec(5)), (("S1", "L2"), rec(6))], generation=began)
    assert cache.get(("S1", "L1")) == rec(5)
    assert cache.get(("S1", "L2")) is None  # written since: not kept


def test_a_fill_older_than_the_writes_it_remembers_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stock_module, "WRITES_REMEMBERED", 2)
    cache = StockCache()
    began = cache.generation
    cache.invalidate([("S1", "L1")])
    cache.invalidate([("S2", "L1"), ("S3", "L1"), ("S4", "L1")])  # S1's write forgotten
    cache.fill([(("S1", "L1"), rec(5))], generation=began)
    assert cache.get(("S1", "L1")) is None
    cache.fill([(("S1", "L1"), rec(7))], generation=cache.generation)  # read after: kept
    assert cache.get(("S1", "L1")) == rec(7)


def test_a_sku_map_read_while_another_sku_is_written_is_kept() -> None:
    cache = StockCache()
    began = cache.sku_token("S1")  # not cached yet
    cache.invalidate([("S2", "L1")])
    cache.fill_sku("S1", {"L1": rec(5)}, token=began)
    assert cache.get_sku("S1") is not None
    began = cache.sku_token("S9")
    cache.invalidate([("S9", "L1")])
    cache.fill_sku("S9", {"L1": rec(5)}, token=began)
    assert cache.get_sku("S9") is None


def test_absence_is_cached_too() -> None:
    cache = StockCache()
    cache.fill([(("S1", "L9"), ABSENT)], generation=cache.generation)
    assert cache.get(("S1", "L9")) is ABSENT


def test_size_zero_turns_the_cache_off() -> None:
    cache = StockCache(maxsize=0)
    cache.fill([(("S1", "L1"), rec(5))], generation=cache.generation)
    assert cache.get(("S1", "L1")) is None


def at(location: str, on_hand: int) -> StockRecord:
    return StockRecord(location, "S1", on_hand, 0, None, AT)


def fill(cache: StockCache, sku: str, records: dict[str, StockRecord]) -> SkuRecords:
    """Fill as a read that nothing raced with."""
    return cache.fill_sku(sku, records, token=cache.sku_token(sku))


def records_of(cache: StockCache, sku: str) -> dict[str, StockRecord] | None:
    entry = cache.get_sku(sku)
    return None if entry is None else entry.records


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sku_map_lives_for_its_ttl_and_until_a_write_touches_the_sku() -> None:
    clock = Clock()
    cache = StockCache(ttl=5, timer=clock)
    records = {"L1": at("L1", 5)}
    fill(cache, "S1", records)
    clock.now = 4.9
    assert records_of(cache, "S1") == records
    clock.now = 5.0
    assert cache.get_sku("S1") is None
    fill(cache, "S1", {"L1": at("L1", 5)})
    assert records_of(cache, "S1") == records
    cache.invalidate([("S1", "L1")])
    assert cache.get_sku("S1") is None


def test_a_refill_keeps_the_version_while_no_record_changed() -> None:
    clock = Clock()
    cache = StockCache(ttl=1, timer=clock)
    first = fill(cache, "S1", {"L1": at("L1", 5), "L2": at("L2", 3)})
    clock.now = 2.0
    # The same values read again: the same version, so what was built on it stands.
    same = fill(cache, "S1", {"L1": at("L1", 5), "L2": at("L2", 3)})
    assert same.version == first.version
    # After a write, equal values read again still keep the version.
    cache.invalidate([("S1", "L2")])
    assert fill(cache, "S1", {"L1": at("L1", 5), "L2": at("L2", 3)}).version == first.version
    # One record changed: a new version.
    cache.invalidate([("S1", "L2")])
    changed = fill(cache, "S1", {"L1": at("L1", 5), "L2": at("L2", 9)})
    assert changed.version != first.version
    assert changed.records == {"L1": at("L1", 5), "L2": at("L2", 9)}
    got = cache.get_sku("S1")
    assert got is not None and got.version == changed.version
    # A record gone or added is a change too.
    cache.clear()
    fewer = fill(cache, "S1", {"L1": at("L1", 5)})
    assert fewer.records == {"L1": at("L1", 5)} and fewer.version not in {
        first.version,
        changed.version,
    }


def test_sku_maps_are_bounded_by_their_records_in_all() -> None:
    cache = StockCache(maxsize=10)
    big = {f"L{i}": at(f"L{i}", 1) for i in range(11)}
    fill(cache, "S1", big)
    assert cache.get_sku("S1") is None  # larger than the whole cache: not kept
    for sku in ("A", "B", "C"):
        fill(cache, sku, {f"L{i}": at(f"L{i}", 1) for i in range(4)})
    # 12 records would exceed 10: the map filled longest ago went.
    assert cache.get_sku("A") is None
    assert cache.get_sku("B") is not None and cache.get_sku("C") is not None


def test_a_refill_is_dropped_after_a_write_to_its_sku_but_not_to_another() -> None:
    clock = Clock()
    cache = StockCache(ttl=1, timer=clock)
    first = {"L1": at("L1", 5)}
    fill(cache, "S1", first)
    clock.now = 2.0
    began = cache.sku_token("S1")  # a refill starts reading ...
    cache.invalidate([("S2", "L1")])  # ... another sku is written meanwhile
    cache.fill_sku("S1", {"L1": at("L1", 6)}, token=began)
    assert records_of(cache, "S1") == {"L1": at("L1", 6)}
    began = cache.sku_token("S1")  # a refill starts reading 6 ...
    cache.invalidate([("S1", "L1")])  # ... a writer commits 7 and invalidates ...
    cache.fill_sku("S1", {"L1": at("L1", 6)}, token=began)  # ... the 6 is not kept
    assert cache.get_sku("S1") is None
    assert cache.peek_sku("S1") == (None, False)


def test_records_past_their_ttl_are_offered_for_one_more_ttl_at_most() -> None:
    clock = Clock()
    cache = StockCache(ttl=1, timer=clock)
    records = fill(cache, "S1", {"L1": at("L1", 5)})
    clock.now = 0.5
    assert cache.peek_sku("S1") == (records, False)
    clock.now = 1.5  # due: used while read again
    assert cache.peek_sku("S1") == (records, True)
    clock.now = 2.0  # no refill came back: no longer offered
    assert cache.peek_sku("S1") == (None, False)


def test_kept_records_are_left_alone_by_the_garbage_collector() -> None:
    # A full collection walks every object it tracks, with the event loop stopped: the
    # records a process keeps (hundreds of thousands) must not be among them.
    import gc

    cache = StockCache()
    held = StockRecord("L2", "S1", 3, 1, 2, AT, 7, ((1, AT),))
    kept = cache.fill_sku("S1", {"L1": rec(5), "L2": held}, token=cache.sku_token("S1"))
    gc.collect()
    gc.collect()  # a tuple is let go once the tuples inside it have been
    assert not any(gc.is_tracked(row) for row in kept.records._rows.values())
    # Read back, they are the records that were kept.
    assert kept.records["L2"] == held and kept.records.get("L1") == rec(5)
    assert kept.records.get("L9") is None and sorted(kept.records) == ["L1", "L2"]
