"""A cache of stock records for hot reads (product and listing pages, nearby searches).

Two maps: by (sku, location_id), a StockRecord or ABSENT when the location
never reported the sku; and by sku, every record of that sku (for searches,
which look at one sku across many locations). Entries live ``ttl`` seconds at most.

Coherence: every write in this process invalidates the keys it touched, before
the writer returns. A read that started before a write must not put its older
result back after the invalidation, so fills carry the write generation seen
when the read began and are dropped if any write happened since. Writes by
other processes show within ``ttl``.

Thread-safe: the event loop reads it, database threads fill and invalidate it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from cachetools import TTLCache
from omnistock.server.domain.stock import StockRecord
from omnistock.server.service.changes import Changes

Key = tuple[str, str]


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
DEFAULT_MAXSIZE = 200_000
DEFAULT_TTL_SECONDS = 1.0


class StockCache:
    def __init__(self, *, maxsize: int = DEFAULT_MAXSIZE, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.enabled = maxsize > 0 and ttl > 0
        self._entries: TTLCache[Key, StockRecord | _Absent] = TTLCache(
            maxsize=max(1, maxsize), ttl=max(ttl, 1e-9)
        )
        self._by_sku: TTLCache[str, dict[str, StockRecord]] = TTLCache(
            maxsize=max(1, maxsize // 10), ttl=max(ttl, 1e-9)
        )
        self._lock = threading.Lock()
        self._generation = 0
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
            if generation != self._generation:
                return
            for key, value in values:
                self._entries[key] = value

    def get_sku(self, sku: str) -> dict[str, StockRecord] | None:
        """Every record of ``sku`` by location id, or None when not cached."""
        if not self.enabled:
            return None
        with self._lock:
            return self._by_sku.get(sku)

    def fill_sku(self, sku: str, records: dict[str, StockRecord], *, generation: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if generation == self._generation:
                self._by_sku[sku] = records

    def invalidate(self, keys: Iterable[Key]) -> None:
        with self._lock:
            self._generation += 1
            for key in keys:
                self._entries.pop(key, None)
                self._by_sku.pop(key[0], None)

    def apply(self, changes: Changes) -> None:
        """A change bus subscriber: forget what ``changes`` touched."""
        if changes.locations:
            self.clear()  # a snapshot rewrote whole locations
        elif changes.pairs:
            self.invalidate(changes.pairs)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._by_sku.clear()
