"""Availability reads: stored records through the stock rules, at the caller's exposure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.stock import AvailabilityView, Exposure, view_missing, view_record
from omnistock.server.service.directory import LocationDirectory
from omnistock.server.store.stock import StockRepository


class AvailabilityService:
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

    def get_availability(
        self, sku: str, location_ids: Sequence[str], *, exposure: Exposure
    ) -> list[AvailabilityView]:
        """One sku at the given locations, in order, or at every active location by id."""
        if location_ids:
            locations = self._directory.require(location_ids)
            records = self._stock.records_for_sku(sku, [loc.id for loc in locations])
        else:
            locations = self._directory.active()
            records = self._stock.records_for_sku(sku, None)
        by_location = {record.location_id: record for record in records}
        if not by_location and not self._stock.existing_skus([sku]):
            raise NotFound("sku", [sku], reason="SKU_NOT_FOUND")
        now = self._clock()
        views = []
        for location in locations:
            record = by_location.get(location.id)
            policy = location.stock_policy()
            views.append(
                view_missing(location.id, sku, policy, exposure=exposure)
                if record is None
                else view_record(record, policy, now=now, exposure=exposure)
            )
        return views

    def batch_get_availability(
        self, pairs: Sequence[tuple[str, str]], *, exposure: Exposure
    ) -> list[AvailabilityView]:
        """Each (sku, location_id) pair in request order. Any unknown id fails the batch."""
        locations = {loc.id: loc for loc in self._directory.require(dict.fromkeys(p[1] for p in pairs))}
        records = self._stock.records_for_pairs(pairs)
        reported = {sku for sku, _ in records}
        unreported = {sku for sku, _ in pairs} - reported
        if unreported:
            unknown = unreported - self._stock.existing_skus(unreported)
            if unknown:
                raise NotFound(
                    "sku", [sku for sku, _ in pairs if sku in unknown], reason="SKU_NOT_FOUND"
                )
        now = self._clock()
        views = []
        for sku, location_id in pairs:
            policy = locations[location_id].stock_policy()
            record = records.get((sku, location_id))
            views.append(
                view_missing(location_id, sku, policy, exposure=exposure)
                if record is None
                else view_record(record, policy, now=now, exposure=exposure)
            )
        return views
