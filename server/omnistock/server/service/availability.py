"""Availability reads: stored records through the stock rules, at the caller's exposure.

``from_memory`` answers from the read model's copies alone (the event loop may call it);
the other reads load what they need, so they run on a database thread. The read model
(readmodel.queries) chooses between them; both build answers with the same code (``_views``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.locations import Location
from omnistock.server.domain.stock import (
    AvailabilityView,
    Exposure,
    StockRecord,
    view_missing,
    view_record,
)
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.single_flight import SingleFlight
from omnistock.server.readmodel.stock import ABSENT, StockCache
from omnistock.server.store.stock import StockRepository

Pair = tuple[str, str]  # (sku, location_id)


class AvailabilityService:
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
        self._cache = cache or StockCache(maxsize=0)
        self._flight: SingleFlight[list[AvailabilityView]] = SingleFlight()

    # -- GetAvailability

    def sku_from_memory(
        self, sku: str, location_ids: Sequence[str], exposure: Exposure
    ) -> list[AvailabilityView] | None:
        """One sku's answers at the named locations from memory alone, or None (as for
        ``from_memory``; the hot product-page read, so without building pairs first)."""
        locations = self._directory.cached(location_ids)
        if locations is None:
            return None
        records = self._cached_records((sku, loc.id) for loc in locations)
        if records is None or not any(records.values()):
            return None  # a miss, or a sku that may not exist: ask the database
        return self._views([(sku, loc) for loc in locations], records, exposure)

    def from_memory(
        self, pairs: Sequence[Pair], exposure: Exposure
    ) -> list[AvailabilityView] | None:
        """Each pair's answer from memory alone, or None when a location or a record is not
        cached, or a sku of ``pairs`` has no cached record (it may not exist: the database
        says). Never touches the database."""
        found = self._cached_pairs(pairs)
        if found is None:
            return None
        records, by_id = found
        reported = {sku for (sku, _), record in records.items() if record is not None}
        if any(sku not in reported for sku, _ in pairs):
            return None
        return self._views([(sku, by_id[loc]) for sku, loc in pairs], records, exposure)

    def get_availability(
        self,
        sku: str,
        location_ids: Sequence[str],
        *,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> list[AvailabilityView]:
        """One sku at the given locations, in order, or at every active location by id.
        A burst of the same request (a hot product page after a write) makes one read.
        ``visible``: the caller's scope (None: all); a sku that no location in it has
        reported is SKU_NOT_FOUND, so a scoped caller cannot tell what other locations hold."""
        # The write generation is in the key: a read that starts after a write never
        # shares a load that began before it.
        key = ("get", sku, tuple(location_ids), exposure, visible, self._cache.generation)
        return self._flight.run(
            key, lambda: self._get_availability(sku, location_ids, exposure, visible)
        )

    def _get_availability(
        self,
        sku: str,
        location_ids: Sequence[str],
        exposure: Exposure,
        visible: frozenset[str] | None,
    ) -> list[AvailabilityView]:
        generation = self._cache.generation
        if location_ids:
            locations = self._directory.require(location_ids)
            found = self._stock.records_for_sku(sku, [loc.id for loc in locations])
        else:
            locations = self._directory.active()
            found = self._stock.records_for_sku(sku, None)
        if not found and not self._stock.existing_skus([sku], visible):
            raise NotFound("sku", [sku], reason="SKU_NOT_FOUND")
        records = self._remember([(sku, loc.id) for loc in locations], found, generation)
        return self._views([(sku, loc) for loc in locations], records, exposure)

    def known_locations(self, location_ids: Iterable[str]) -> set[str]:
        """Those of the ids that name an active location."""
        active = {loc.id for loc in self._directory.active()}
        return {i for i in location_ids if i in active}

    # -- BatchGetAvailability

    def _cached_pairs(
        self, pairs: Sequence[Pair]
    ) -> tuple[dict[Pair, StockRecord | None], dict[str, Location]] | None:
        locations = self._directory.cached(dict.fromkeys(p[1] for p in pairs))
        if locations is None:
            return None
        records = self._cached_records(pairs)
        if records is None:
            return None
        return records, {loc.id: loc for loc in locations}

    def batch_get_availability(
        self,
        pairs: Sequence[Pair],
        *,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> list[AvailabilityView]:
        """Each (sku, location_id) pair in request order. Any unknown id fails the batch
        (a sku is known when a location ``visible`` has reported it, as for GetAvailability)."""
        key = ("batch", tuple(pairs), exposure, visible, self._cache.generation)
        return self._flight.run(key, lambda: self._batch_get_availability(pairs, exposure, visible))

    def _batch_get_availability(
        self, pairs: Sequence[Pair], exposure: Exposure, visible: frozenset[str] | None
    ) -> list[AvailabilityView]:
        generation = self._cache.generation
        by_id = {loc.id: loc for loc in self._directory.require(dict.fromkeys(p[1] for p in pairs))}
        found = self._stock.records_for_pairs(pairs).values()
        records = self._remember(pairs, found, generation)
        unreported = {sku for sku, _ in pairs} - {r.sku for r in found}
        if unreported:
            unknown = unreported - self._stock.existing_skus(unreported, visible)
            if unknown:
                raise NotFound(
                    "sku",
                    dict.fromkeys(s for s, _ in pairs if s in unknown),
                    reason="SKU_NOT_FOUND",
                )
        return self._views([(sku, by_id[loc]) for sku, loc in pairs], records, exposure)

    # -- watches: pairs whose skus need not exist yet (they read as never reported)

    def cached_pairs(
        self, pairs: Sequence[Pair], *, exposure: Exposure
    ) -> list[AvailabilityView] | None:
        found = self._cached_pairs(pairs)
        if found is None:
            return None
        records, by_id = found
        return self._views([(sku, by_id[loc]) for sku, loc in pairs], records, exposure)

    def views_of_pairs(
        self, pairs: Sequence[Pair], *, exposure: Exposure
    ) -> list[AvailabilityView]:
        generation = self._cache.generation
        by_id = {loc.id: loc for loc in self._directory.require(dict.fromkeys(p[1] for p in pairs))}
        records = self._remember(pairs, self._stock.records_for_pairs(pairs).values(), generation)
        return self._views([(sku, by_id[loc]) for sku, loc in pairs], records, exposure)

    def warm(self, pairs: Sequence[Pair]) -> None:
        """Read ``pairs`` into the read cache (one read for many watchers)."""
        generation = self._cache.generation
        self._remember(pairs, self._stock.records_for_pairs(pairs).values(), generation)

    # -- shared

    def _cached_records(self, pairs: Iterable[Pair]) -> dict[Pair, StockRecord | None] | None:
        records: dict[Pair, StockRecord | None] = {}
        for pair in pairs:
            value = self._cache.get(pair)
            if value is None:
                return None
            records[pair] = None if value is ABSENT else value  # type: ignore[assignment]
        return records

    def _remember(
        self, pairs: Sequence[Pair], found: Iterable[StockRecord], generation: int
    ) -> dict[Pair, StockRecord | None]:
        records: dict[Pair, StockRecord | None] = dict.fromkeys(pairs)
        for record in found:
            records[(record.sku, record.location_id)] = record
        self._cache.fill(
            ((pair, ABSENT if record is None else record) for pair, record in records.items()),
            generation=generation,
        )
        return records

    def _views(
        self,
        wanted: Sequence[tuple[str, Location]],
        records: dict[Pair, StockRecord | None],
        exposure: Exposure,
    ) -> list[AvailabilityView]:
        now = self._clock()
        views = []
        for sku, location in wanted:
            policy = location.stock_policy
            record = records.get((sku, location.id))
            views.append(
                view_missing(location.id, sku, policy, exposure=exposure)
                if record is None
                else view_record(record, policy, now=now, exposure=exposure)
            )
        return views
