"""A cache of stock records for hot reads (product and listing pages, nearby searches).

Two maps: by (sku, location_id), a StockRecord or ABSENT when the location
never reported the sku; and by sku, every record of that sku (for searches,
which look at one sku across many locations). Entries live ``ttl`` seconds at most.

Each sku's map carries a version (SkuRecords.version) that changes when, and only when,
its records do: a map read again after its TTL with every record equal keeps its version,
so what readers built on it (a search's holder grids and store answers, which compare the
version) stays valid across refills.

Coherence: every write in this process invalidates the keys it touched, before
the writer returns. A read that started before a write must not put its older
result back after the invalidation, so fills carry the write generation seen
when the read began, and a value is dropped if its own key (a sku map: its sku) was
written since. The cache remembers the generation of the last write of the most
recently written keys (WRITES_REMEMBERED); a fill older than the writes it has
forgotten is dropped whole, as it cannot tell. (Comparing the one global generation
instead dropped nearly every fill under a steady feed: 19% hits in bench.py mixed.) Writes by
other processes arrive on the change bus too; ``ttl`` (30 s by default) is the
backstop for a change the bus lost.

Thread-safe: the event loop reads it, database threads fill and invalidate it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from cachetools import TTLCache
from omnistock.server.domain.stock import StockRecord
from omnistock.server.service.changes import Changes

Key = tuple[str, str]

# The keys (and skus) whose last write generation the cache remembers: enough for every
# write made while a read is in flight (a feed of 30,000 records/s for 3 s).
WRITES_REMEMBERED = 100_000


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
DEFAULT_MAXSIZE = 200_000
# A backstop: the change bus drops what writes touch, here and in other processes.
DEFAULT_TTL_SECONDS = 30.0


class StockCache:
    def __init__(
        self,
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        ttl: float = DEFAULT_TTL_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = maxsize > 0 and ttl > 0
        self._ttl = ttl
        self._timer = timer
        self._entries: TTLCache[Key, StockRecord | _Absent] = TTLCache(
            maxsize=max(1, maxsize), ttl=max(ttl, 1e-9), timer=timer
        )
        # sku -> its records, at most ``maxsize`` records in all.
        # An expired or invalidated map stays until it is evicted or refilled, so that
        # the refill can keep what did not change. A plain dict, read without the lock
        # (searches read it on the event loop); the maps filled longest ago go first, and
        # a hot sku's map is filled again every TTL.
        self._by_sku: dict[str, SkuRecords] = {}
        # Versions and stamps of sku maps, each drawn once (see SkuRecords).
        self._versions = 0
        self._stamps = 0
        self._by_sku_size = 0
        self._by_sku_max = max(1, maxsize)
        self._lock = threading.Lock()
        self._generation = 0
        # Last write generation of recently written keys and skus, oldest first, and the
        # newest generation forgotten from them (a fill read before it cannot tell).
        self._written: OrderedDict[Key | str, int] = OrderedDict()
        self._forgotten = 0
        self.hits = 0
        self.misses = 0

    @property
    def generation(self) -> int:
        """Grows with every invalidation; read it before loading from the database."""
        return self._generation

    def get(self, key: Key) -> StockRecord | _Absent | None:
        """The cached value, or None when the key is not cached."""
        if not self.enabled:
            return None
        with self._lock:
            try:
                value = self._entries[key]
            except KeyError:
                self.misses += 1
                return None
        self.hits += 1
        return value

    def fill(self, values: Iterable[tuple[Key, StockRecord | _Absent]], *, generation: int) -> None:
        """Store values read at ``generation``, unless a write has happened since."""
        if not self.enabled:
            return
        with self._lock:
            if generation < self._forgotten:
                return
            written = self._written
            for key, value in values:
                if written.get(key, -1) <= generation:
                    self._entries[key] = value

    def get_sku(self, sku: str) -> SkuRecords | None:
        """Every record of ``sku`` by location id, or None when not cached."""
        if not self.enabled:
            return None
        entry = self._by_sku.get(sku)
        if entry is None or self._timer() - entry.loaded_at >= self._ttl:
            return None
        return entry

    def peek_sku(self, sku: str) -> tuple[SkuRecords | None, bool]:
        """The records of ``sku`` unless a write has touched them since they were read or
        they are twice the TTL old (None then, or when not cached), and whether their TTL
        has passed: a caller that must not wait may use them while it has them read again."""
        if not self.enabled:
            return None, False
        entry = self._by_sku.get(sku)
        if entry is None:
            return None, False
        age = self._timer() - entry.loaded_at
        if age >= 2 * self._ttl:  # also an invalidated entry (loaded at -inf)
            return None, False
        return entry, age >= self._ttl

    def sku_token(self, sku: str) -> SkuToken:
        """Take before reading the records of ``sku``; give to fill_sku."""
        entry = self._by_sku.get(sku)
        return SkuToken(None if entry is None else entry.stamp, self._generation)

    def fill_sku(self, sku: str, records: dict[str, StockRecord], *, token: SkuToken) -> SkuRecords:
        """Store the records of ``sku`` read since ``token`` (sku_token) unless a write to
        the sku has happened since (when the sku was not cached: any write), and return
        them with their version: the cached one's when every record is equal to it."""
        previous = self._by_sku.get(sku)
        kept = RecordMap(records)
        with self._lock:
            if previous is not None and previous.records == kept:
                version = previous.version
                kept = previous.records
            else:
                self._versions += 1
                version = self._versions
            self._stamps += 1
            entry = SkuRecords(kept, version, self._stamps, self._timer())
            if not self.enabled:
                return entry
            # A write to the sku gives its entry a new stamp (invalidate marks it expired),
            # so an entry whose stamp is still the one seen before the read means no write
            # came between.
            current = self._by_sku.get(sku)
            unchanged = (
                current is not None and current.stamp == token.stamp
                if token.stamp is not None
                else token.generation >= self._forgotten
                and self._written.get(sku, -1) <= token.generation
            )
            size = max(1, len(records))
            if not unchanged or size > self._by_sku_max:
                return entry
            replaced = self._by_sku.pop(sku, None)
            if replaced is not None:
                self._by_sku_size -= max(1, len(replaced.records))
            while self._by_sku and self._by_sku_size + size > self._by_sku_max:
                oldest = next(iter(self._by_sku))
                self._by_sku_size -= max(1, len(self._by_sku.pop(oldest).records))
            self._by_sku[sku] = entry
            self._by_sku_size += size
        return entry

    def invalidate(self, keys: Iterable[Key]) -> None:
        with self._lock:
            self._generation += 1
            for key in keys:
                self._entries.pop(key, None)
                self._remember(key)
                self._remember(key[0])
                entry = self._by_sku.get(key[0])
                if entry is not None:
                    self._by_sku[key[0]] = self._expired(entry)

    def _remember(self, written: Key | str) -> None:
        """Note that ``written`` (a key or a sku) was written now. Under the lock."""
        self._written[written] = self._generation
        self._written.move_to_end(written)
        if len(self._written) > WRITES_REMEMBERED:
            _, generation = self._written.popitem(last=False)
            self._forgotten = max(self._forgotten, generation)

    def apply(self, changes: Changes) -> None:
        """A change bus subscriber: forget what ``changes`` touched."""
        if changes.locations or changes.everything:
            self.clear()  # a snapshot rewrote whole locations, or changes were missed
        elif changes.pairs:
            self.invalidate(changes.pairs)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._forgotten = self._generation  # every key was written
            self._written.clear()
            self._entries.clear()
            for sku, entry in list(self._by_sku.items()):
                self._by_sku[sku] = self._expired(entry)

    def _expired(self, entry: SkuRecords) -> SkuRecords:
        """``entry`` marked written: never offered again, kept so that a refill can keep
        its version when nothing changed. Under the lock."""
        self._stamps += 1
        return replace(entry, stamp=self._stamps, loaded_at=_EXPIRED)


_EXPIRED = float("-inf")


class RecordMap(Mapping[str, StockRecord]):
    """A sku's records by location id, read as StockRecords and kept as plain tuples.

    The garbage collector stops tracking a plain tuple of strings, numbers and
    datetimes, but never a class's instances: a cache of 200,000 records as objects made
    every full collection walk them, 250-400 ms with the event loop stopped (bench.py
    channel). Reading one makes a StockRecord of its tuple (a fraction of a microsecond).
    """

    __slots__ = ("_rows",)

    def __init__(self, records: Mapping[str, StockRecord]) -> None:
        self._rows: dict[str, tuple[object, ...]] = {
            location_id: tuple(record) for location_id, record in records.items()
        }

    def __getitem__(self, location_id: str) -> StockRecord:
        return StockRecord._make(self._rows[location_id])

    def get(self, location_id: str, default: Any = None) -> Any:
        row = self._rows.get(location_id)
        return default if row is None else StockRecord._make(row)

    def __contains__(self, location_id: object) -> bool:
        return location_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordMap):
            return self._rows == other._rows
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordMap({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class SkuRecords:
    """Every cached record of one sku by location id, and its version: equal versions
    mean equal records. ``stamp`` changes with every fill and every write to the sku."""

    records: RecordMap
    version: int
    stamp: int
    loaded_at: float


@dataclass(frozen=True, slots=True)
class SkuToken:
    """What a fill of a sku's records compares to learn that no write came between."""

    stamp: int | None
    generation: int
