"""Distances and a grid index of locations, so a nearby search never scans everything."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LATITUDE = 111.195

T = TypeVar("T")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def degree_box(lat: float, radius_km: float) -> tuple[float, float]:
    """Half the height and width, in degrees, of a box holding a circle of ``radius_km``."""
    dlat = radius_km / KM_PER_DEGREE_LATITUDE
    cos_lat = max(math.cos(math.radians(min(89.9, abs(lat) + dlat))), 1e-6)
    return dlat, min(180.0, radius_km / (KM_PER_DEGREE_LATITUDE * cos_lat))


@dataclass(frozen=True, slots=True)
class Nearby(Generic[T]):
    item: T
    distance_km: float


class GridIndex(Generic[T]):
    """Points bucketed into cells of ``cell_degrees``; a radius query reads only the cells
    its bounding box touches, then measures the real distance of each candidate.

    >>> index = GridIndex([("Amsterdam", 52.37, 4.90), ("Utrecht", 52.09, 5.12)])
    >>> [n.item for n in index.within(52.37, 4.89, 10)]
    ['Amsterdam']
    """

    def __init__(
        self, points: Iterable[tuple[T, float, float]], *, cell_degrees: float = 0.02
    ) -> None:
        self._cell = cell_degrees
        self._cells: defaultdict[tuple[int, int], list[tuple[T, float, float]]] = defaultdict(list)
        self.size = 0
        for item, lat, lon in points:
            self._cells[self._key(lat, lon)].append((item, lat, lon))
            self.size += 1

    def _key(self, lat: float, lon: float) -> tuple[int, int]:
        return (math.floor(lat / self._cell), math.floor(lon / self._cell))

    def nearest_first(
        self,
        lat: float,
        lon: float,
        radius_km: float,
        *,
        keep: Callable[[T], bool] | None = None,
        first_ring_km: float = 4.0,
    ) -> Iterator[Nearby[T]]:
        """Every point within ``radius_km`` (that ``keep`` accepts), nearest first, found ring
        by ring (4 km, 8 km, 16 km ...), so a caller that stops early reads only inner cells."""
        inner = -1.0
        ring = min(first_ring_km, radius_km)
        while True:
            for near in self.within(lat, lon, ring, keep=keep):
                if near.distance_km > inner:
                    yield near
            if ring >= radius_km:
                return
            inner, ring = ring, min(ring * 2, radius_km)

    def within(
        self, lat: float, lon: float, radius_km: float, *, keep: Callable[[T], bool] | None = None
    ) -> list[Nearby[T]]:
        """Every point within ``radius_km`` (that ``keep`` accepts), nearest first."""
        dlat, dlon = degree_box(lat, radius_km)
        lat_lo, lon_lo = self._key(max(-90.0, lat - dlat), lon - dlon)
        lat_hi, lon_hi = self._key(min(90.0, lat + dlat), lon + dlon)
        # A flat-earth distance rules out most of the box cheaply; the haversine decides
        # for the rest. The 2% margin covers the flat approximation at these radii.
        cos_lat = math.cos(math.radians(lat))
        limit = (radius_km * 1.02 / KM_PER_DEGREE_LATITUDE) ** 2
        found: list[Nearby[T]] = []
        wrap = round(360 / self._cell)
        half = wrap // 2
        columns = range(lon_lo, lon_hi + 1) if lon_hi - lon_lo < wrap else range(wrap)
        # Column keys wrap around the antimeridian.
        wrapped = [(j + half) % wrap - half for j in columns]
        cells = self._cells
        empty: list[tuple[T, float, float]] = []
        for i in range(lat_lo, lat_hi + 1):
            for j in wrapped:
                for item, plat, plon in cells.get((i, j), empty):
                    if keep is not None and not keep(item):
                        continue
                    across = abs(plon - lon)
                    if across > 180.0:
                        across = 360.0 - across
                    across *= cos_lat
                    if (plat - lat) ** 2 + across * across > limit:
                        continue
                    d = distance_km(lat, lon, plat, plon)
                    if d <= radius_km:
                        found.append(Nearby(item, d))
        found.sort(key=lambda n: n.distance_km)
        return found


def nearest_in_any(
    grids: Sequence[GridIndex[T]],
    lat: float,
    lon: float,
    radius_km: float,
    *,
    first_ring_km: float = 4.0,
) -> Iterator[Nearby[T]]:
    """The points of several grids within ``radius_km``, each once, nearest first, found
    ring by ring (4 km, 8 km, 16 km ...) so that a caller that stops early reads little."""
    inner = -1.0
    ring = min(first_ring_km, radius_km)
    while True:
        merged: dict[int, Nearby[T]] = {}
        for grid in grids:
            for near in grid.within(lat, lon, ring):
                merged.setdefault(id(near.item), near)
        for near in sorted(merged.values(), key=lambda n: n.distance_km):
            if near.distance_km > inner:
                yield near
        if ring >= radius_km:
            return
        inner, ring = ring, min(ring * 2, radius_km)
