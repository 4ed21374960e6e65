"""The read model's queries: one async method each, answered from memory when it can.

A query looks in the read model's copies first (the stock cache, the location directory,
the search's per-minute answers); what is missing it awaits from the database on the
bounded pool (``run``), never on the event loop. Servicers await these methods and know
nothing of where the answer came from.

Each query bounds the work it does on the event loop: a batch builds its answers in
slices of BATCH_SLICE pairs and lets other calls run between them; a search's walk
pauses every WALK_SLICE_SECONDS (service.nearby). The ceilings are in docs/shopping.md.

The change bus invalidates the copies (``apply``); nothing else needs to know of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from omnistock.server.domain.fulfillment import CartLine, Option
from omnistock.server.domain.stock import AvailabilityView, Exposure
from omnistock.server.readmodel.channel_queries import ChannelItem, ChannelQueries, ChannelReply
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.stock import SkuRecords, StockCache
from omnistock.server.service.answers import SearchResult
from omnistock.server.service.availability import AvailabilityService, Pair
from omnistock.server.service.changes import Changes
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.origins import Origin

log = logging.getLogger("omnistock.readmodel")

T = TypeVar("T")


class Run(Protocol):
    """Runs a blocking call on the bounded database pool (transport.blocking)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]: ...


# The most pairs whose answers a batch builds before it lets other calls run: about
# 1.5 ms of work (a 1,000-pair batch built in one go held the loop about 10 ms).
BATCH_SLICE = 50


class ReadModel:
    def __init__(
        self,
        *,
        availability: AvailabilityService,
        shopping: ShoppingService,
        directory: LocationDirectory,
        cache: StockCache,
        run: Run,
        background: Callable[[Callable[[], None]], object] | None = None,
        channels: ChannelQueries | None = None,
    ) -> None:
        # Channel answers (readmodel.channel_queries); None where a reader has none.
        self._channels = channels
        self._availability = availability
        self._shopping = shopping
        self._directory = directory
        self._cache = cache
        self._run = run
        # Runs a refresh off the event loop without waiting for it: with it, a query goes
        # on with cached records whose TTL has passed (up to twice the TTL) while they
        # are read again. Writes here and the change bus drop cached records at once; the
        # TTL only bounds how long a lost change notice could go unseen.
        self._background = background
        self._refreshing: set[object] = set()
        self._refresh_lock = threading.Lock()

    def apply(self, changes: Changes) -> None:
        """The change bus subscriber: drop every copy that ``changes`` touched."""
        self._cache.apply(changes)
        self._directory.apply(changes)
        if self._channels is not None:
            self._channels.apply(changes)

    def now(self) -> datetime:
        return self._shopping.now()

    # -- GetAvailability, BatchGetAvailability

    async def availability(
        self,
        sku: str,
        location_ids: Sequence[str],
        *,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> list[AvailabilityView]:
        """One sku at the given locations, in order, or at every active location by id
        (``visible``: the caller's scope, None for all)."""
        if location_ids:
            views = self._availability.sku_from_memory(sku, location_ids, exposure)
            if views is not None:
                return views
        return await self._run(
            self._availability.get_availability,
            sku,
            location_ids,
            exposure=exposure,
            visible=visible,
        )

    async def batch_availability(
        self,
        pairs: Sequence[Pair],
        *,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> list[AvailabilityView]:
        """Each (sku, location_id) pair in request order, BATCH_SLICE pairs at a time."""
        views = await self._sliced(pairs, self._availability.from_memory, exposure)
        if views is not None:
            return views
        return await self._run(
            self._availability.batch_get_availability,
            pairs,
            exposure=exposure,
            visible=visible,
        )

    async def pair_views(
        self, pairs: Sequence[Pair], *, exposure: Exposure
    ) -> list[AvailabilityView]:
        """Each pair's answer, for watches: a sku need not exist yet (it reads as never
        reported), but every location must."""
        views = await self._sliced(
            pairs, lambda part, e: self._availability.cached_pairs(part, exposure=e), exposure
        )
        if views is not None:
            return views
        return await self._run(self._availability.views_of_pairs, list(pairs), exposure=exposure)

    async def _sliced(
        self,
        pairs: Sequence[Pair],
        from_memory: Callable[[Sequence[Pair], Exposure], list[AvailabilityView] | None],
        exposure: Exposure,
    ) -> list[AvailabilityView] | None:
        """The answers from memory, BATCH_SLICE pairs at a time with the event loop free
        between slices; None as soon as a slice needs the database."""
        views: list[AvailabilityView] = []
        for start in range(0, len(pairs), BATCH_SLICE):
            if start:
                await asyncio.sleep(0)
            part = from_memory(pairs[start : start + BATCH_SLICE], exposure)
            if part is None:
                return None
            views += part
        return views

    # -- channel answers: GetAvailability and BatchGetAvailability with a channel, watches

    async def channel_answers(
        self,
        items: Sequence[ChannelItem],
        *,
        exposure: Exposure,
        field: Callable[[int], str],
        must_exist: bool = True,
    ) -> list[ChannelReply]:
        """Each (sku, channel, method, quantity) item's channel answer, in request order
        (see ChannelQueries.answers)."""
        assert self._channels is not None
        return await self._channels.answers(items, exposure, field=field, must_exist=must_exist)

    # -- SearchNearby, GetFulfillmentOptions

    async def search_nearby(
        self, lines: Sequence[CartLine], origin: Origin, **options: Any
    ) -> SearchResult:
        """The nearest stores for a cart (see ShoppingService.search_nearby)."""
        visible: frozenset[str] | None = options.get("visible")
        await self._current_directory()
        if origin.latitude is not None and origin.longitude is not None:
            point = (origin.latitude, origin.longitude)
        else:
            point = await self._run(self._shopping.resolve, origin, visible)
        records = {}
        for line in lines:
            records[line.sku] = await self._records_of(line.sku)
        return await self._shopping.search_nearby(lines, point, records, **options)

    async def fulfillment_options(
        self,
        lines: Sequence[CartLine],
        origin: Origin,
        *,
        radius_km: float,
        visible: frozenset[str] | None = None,
    ) -> tuple[tuple[float, float], list[Option]]:
        """The ranked ways to get the cart (see ShoppingService.fulfillment_options)."""
        return await self._run(
            self._shopping.fulfillment_options,
            lines,
            origin,
            radius_km=radius_km,
            visible=visible,
        )

    async def _current_directory(self) -> None:
        if self._directory.is_fresh():
            return
        if self._background is None or self._directory.generation == 0:
            await self._run(self._directory.all)  # renews it
        else:
            self._later("directory", self._directory.all)

    async def _records_of(self, sku: str) -> SkuRecords:
        cached, due = self._cache.peek_sku(sku)
        if cached is None or (due and self._background is None):
            return await self._run(self._shopping.read_sku, sku)
        if due:
            self._later(("sku", sku), lambda: self._shopping.read_sku(sku))
        return cached

    def _later(self, key: object, refresh: Callable[[], object]) -> None:
        """Run ``refresh`` in the background unless a refresh of ``key`` is under way."""
        assert self._background is not None
        with self._refresh_lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                refresh()
            except Exception:
                log.exception("refreshing %s in the background failed", key)
            finally:
                with self._refresh_lock:
                    self._refreshing.discard(key)

        try:
            self._background(run)
        except RuntimeError:  # the pool has shut down: the server is stopping
            with self._refresh_lock:
                self._refreshing.discard(key)
