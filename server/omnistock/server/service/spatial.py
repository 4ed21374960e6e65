"""The spatial index: a grid of every active location, and one of each sku's holders.

A holder grid is kept by sku with the version of the records it was built from and the
directory's generation: it stands while both do (a refill that changed nothing keeps the
version, so a hot sku's grid is built once, not every TTL).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from omnistock.server.domain.geo import GridIndex
from omnistock.server.domain.locations import Location
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.stock import SkuRecords

# The most skus whose holders' grids are kept.
_HOLDER_GRIDS = 10_000


@dataclass(slots=True)
class _HolderGrid:
    """A grid index of one sku's holders, built on a version of its records and a
    generation of the directory."""

    records_version: int
    directory_generation: int
    grid: GridIndex[Location]


class SpatialIndex:
    def __init__(self, directory: LocationDirectory) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        # By sku: a plain dict, read without the lock (searches read it on the event
        # loop), emptied when full.
        self._holder_grids: dict[str, _HolderGrid] = {}
        self._index: tuple[int, GridIndex[Location]] | None = None

    def locations(self) -> GridIndex[Location]:
        """Every active location (the directory refreshed first when due)."""
        self._directory.all()  # refreshes the directory when due
        generation = self._directory.generation
        index = self._index
        if index is None or index[0] != generation:
            with self._lock:
                locations = [loc for loc in self._directory.all() if loc.active]
                index = (
                    generation,
                    GridIndex((loc, loc.latitude, loc.longitude) for loc in locations),
                )
                self._index = index
        return index[1]

    def holders(self, sku: str, of_sku: SkuRecords) -> GridIndex[Location]:
        """A grid index of the active locations in one sku's records."""
        generation = self._directory.generation
        cached = self._holder_grids.get(sku)
        if (
            cached is not None
            and cached.records_version == of_sku.version
            and cached.directory_generation == generation
        ):
            return cached.grid
        by_id = self._directory.by_id(renew=False)
        holders = (by_id.get(location_id) for location_id in of_sku.records)
        grid = GridIndex(
            (loc, loc.latitude, loc.longitude) for loc in holders if loc is not None and loc.active
        )
        with self._lock:
            if len(self._holder_grids) >= _HOLDER_GRIDS:
                self._holder_grids = {}
            self._holder_grids[sku] = _HolderGrid(of_sku.version, generation, grid)
        return grid
