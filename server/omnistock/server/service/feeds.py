"""Feed writes. The ordering rule itself is enforced by the store, atomically, in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from omnistock.server.service.directory import LocationDirectory
from omnistock.server.service.stock_cache import StockCache
from omnistock.server.store.stock import AbsoluteUpdate, ApplyResult, StockRepository


class FeedService:
    def __init__(
        self,
        stock: StockRepository,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
        cache: StockCache | None = None,
    ) -> None:
        self._stock = stock
        self._directory = directory
        self._clock = clock
        self._cache = cache

    def apply_stock_updates(self, updates: Sequence[AbsoluteUpdate]) -> ApplyResult:
        """Apply a batch all or nothing: an unknown location rejects the whole batch."""
        self._directory.require(dict.fromkeys(u.location_id for u in updates))
        try:
            return self._stock.apply_absolute(updates, now=self._clock())
        finally:
            # Also after a failure: the transaction may have committed before it.
            if self._cache is not None:
                self._cache.invalidate((u.sku, u.location_id) for u in updates)
