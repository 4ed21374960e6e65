"""Distances and a grid index of locations, so a nearby search never scans everything."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


CELL_DEGREES = 0.02

# item, latitude, longitude, latitude in radians, cosine of that latitude
_Point = tuple[T, float, float, float, float]
_EMPTY: list[Any] = []


def _key(lat: float, lon: float, cell: float) -> tuple[int, int]:
    return (math.floor(lat / cell), math.floor(lon / cell))


class GridIndex(Generic[T]):
    """Points bucketed into cells of ``cell_degrees``; a radius query reads only the cells
    its bounding box touches, then measures the real distance of each candidate.

    >>> index = GridIndex([("Amsterdam", 52.37, 4.90), ("Utrecht", 52.09, 5.12)])
    >>> [n.item for n in index.within(52.37, 4.89, 10)]
    ['Amsterdam']
    """

    def __init__(
        self, points: Iterable[tuple[T, float, float]], *, cell_degrees: float = CELL_DEGREES
    ) -> None:
        self.cell_degrees = cell_degrees
        # Each point is kept with its latitude in radians and that latitude's cosine,
        # which the haversine would otherwise compute again on every query.
        self._cells: defaultdict[tuple[int, int], list[_Point[T]]] = defaultdict(list)
        self.size = 0
        for item, lat, lon in points:
            phi = math.radians(lat)
            self._cells[_key(lat, lon, cell_degrees)].append((item, lat, lon, phi, math.cos(phi)))
            self.size += 1

    def nearest_first(
        self,
        lat: float,
        lon: float,
        radius_km: float,
        *,
        keep: Callable[[T], bool] | None = None,
        first_ring_km: float = 4.0,
    ) -> Iterator[Nearby[T]]:
        """Every point within ``radius_km`` (that ``keep`` accepts), nearest first, read
        lazily (see nearest_in_any), so a caller that stops early reads only inner cells."""
        return nearest_in_any([self], lat, lon, radius_km, first_ring_km=first_ring_km, keep=keep)

    def within(
        self, lat: float, lon: float, radius_km: float, *, keep: Callable[[T], bool] | None = None
    ) -> list[Nearby[T]]:
        """Every point within ``radius_km`` (that ``keep`` accepts), nearest first."""
        query = _Query(lat, lon, radius_km)
        found: list[tuple[float, int, Nearby[T]]] = []
        seen: set[int] = set()
        for _, key in query.cells(radius_km, self.cell_degrees):
            query.collect((self,), key, seen, found, keep)
        return [near for _, _, near in sorted(found)]


class _Query:
    """One radius query: its constants, and the cells its box touches with a lower bound of
    the distance to each; shared by every grid the query reads."""

    __slots__ = ("cos_phi", "lat", "limit", "lon", "phi", "radius_km")

    def __init__(self, lat: float, lon: float, radius_km: float) -> None:
        self.lat, self.lon, self.radius_km = lat, lon, radius_km
        self.phi = math.radians(lat)
        self.cos_phi = math.cos(self.phi)
        # A flat-earth distance rules out most of the box cheaply; the haversine decides
        # for the rest. The 2% margin covers the flat approximation at these radii.
        self.limit = (radius_km * 1.02 / KM_PER_DEGREE_LATITUDE) ** 2

    def cells(self, box_km: float, cell: float) -> list[tuple[float, tuple[int, int]]]:
        """The cells of the box holding a circle of ``box_km``, each with a lower bound of
        the distance from the origin to any point in it."""
        lat, lon = self.lat, self.lon
        dlat, dlon = degree_box(lat, box_km)
        lat_lo, lon_lo = _key(max(-90.0, lat - dlat), lon - dlon, cell)
        lat_hi, lon_hi = _key(min(90.0, lat + dlat), lon + dlon, cell)
        wrap = round(360 / cell)
        half = wrap // 2
        if lon_hi - lon_lo >= wrap:
            lon_lo, lon_hi = -half, wrap - half - 1
        # The nearest point of a cell is at least this far: a flat distance with the
        # narrowest longitude degree in the box, less 1% for the flat approximation.
        squeeze = max(math.cos(math.radians(min(89.9, abs(lat) + dlat))), 0.0)
        scale = 0.99 * KM_PER_DEGREE_LATITUDE
        rows = [
            (i, (scale * max(0.0, i * cell - lat, lat - (i + 1) * cell)) ** 2)
            for i in range(lat_lo, lat_hi + 1)
        ]
        # Column keys wrap around the antimeridian.
        columns = [
            ((j + half) % wrap - half, (scale * squeeze * max(0.0, j * cell - lon, lon - (j + 1) * cell)) ** 2)
            for j in range(lon_lo, lon_hi + 1)
        ]  # fmt: skip
        return [(math.sqrt(down + across), (i, j)) for i, down in rows for j, across in columns]

    def collect(
        self,
        grids: Sequence[GridIndex[T]],
        key: tuple[int, int],
        seen: set[int],
        found: list[tuple[float, int, Nearby[T]]],
        keep: Callable[[T], bool] | None = None,
    ) -> None:
        """Add the points of one cell of each grid within the radius, and not yet ``seen``,
        to ``found`` as (distance, tie-break, Nearby) heap entries."""
        lat, lon, limit, radius = self.lat, self.lon, self.limit, self.radius_km
        phi, cos_phi = self.phi, self.cos_phi
        sin, asin, sqrt, radians = math.sin, math.asin, math.sqrt, math.radians
        points = [p for grid in grids for p in grid._cells.get(key, _EMPTY)]
        for item, plat, plon, pphi, pcos in points:
            if id(item) in seen or (keep is not None and not keep(item)):
                continue
            across = abs(plon - lon)
            if across > 180.0:
                across = 360.0 - across
            flat = across * cos_phi
            if (plat - lat) ** 2 + flat * flat > limit:
                continue
            # The haversine, inline: this loop is the search's hottest.
            a = sin((pphi - phi) / 2) ** 2 + cos_phi * pcos * sin(radians(across) / 2) ** 2
            d = 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))
            if d <= radius:
                seen.add(id(item))
                heapq.heappush(found, (d, id(item), Nearby(item, d)))


def nearest_in_any(
    grids: Sequence[GridIndex[T]],
    lat: float,
    lon: float,
    radius_km: float,
    *,
    first_ring_km: float = 4.0,
    keep: Callable[[T], bool] | None = None,
) -> Iterator[Nearby[T]]:
    """The points of several grids (of one cell size) within ``radius_km``, each once,
    nearest first.

    Best first: the cells of a box around the origin are read in order of how near they
    could hold a point, and a point is yielded once no unread cell could hold a nearer
    one. A caller that stops after the nearest few reads only the cells around them. The
    box starts at ``first_ring_km`` and doubles until it holds the radius.
    """
    if not grids:
        return
    cell = grids[0].cell_degrees
    found: list[tuple[float, int, Nearby[T]]] = []
    seen: set[int] = set()
    read: set[tuple[int, int]] = set()
    ring = min(first_ring_km, radius_km)
    query = _Query(lat, lon, radius_km)
    while True:
        for bound, key in sorted(query.cells(ring, cell)):
            if key in read:
                continue
            read.add(key)
            while found and found[0][0] <= bound:
                yield heapq.heappop(found)[2]
            query.collect(grids, key, seen, found, keep)
        if ring >= radius_km:
            while found:
                yield heapq.heappop(found)[2]
            return
        # Every unread cell lies outside the box, so beyond ``ring``.
        while found and found[0][0] <= ring:
            yield heapq.heappop(found)[2]
        ring = min(ring * 2, radius_km)
