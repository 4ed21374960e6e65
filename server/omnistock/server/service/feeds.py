"""Feed writes. The ordering rule itself is enforced by the store, atomically, in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from omnistock.server.service.directory import LocationDirectory
from omnistock.server.store.stock import AbsoluteUpdate, ApplyResult, StockRepository


class FeedService:
    def __init__(
        self,
        stock: StockRepository,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._stock = stock
        self._directory = directory
        self._clock = clock

    def apply_stock_updates(self, updates: Sequence[AbsoluteUpdate]) -> ApplyResult:
        """Apply a batch all or nothing: an unknown location rejects the whole batch."""
        self._directory.require(dict.fromkeys(u.location_id for u in updates))
        return self._stock.apply_absolute(updates, now=self._clock())
