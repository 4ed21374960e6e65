"""Distances and a grid index of locations, so a nearby search never scans everything."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
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


@dataclass(slots=True)  # not frozen: a search makes one per candidate, and frozen costs 2x
class Nearby(Generic[T]):
    item: T
    distance_km: float


CELL_DEGREES = 0.02
# A query first reads the square of cells this many cells around the origin's cell.
BLOCK = 2
# The most blocks a grid keeps.
MAX_BLOCKS = 4_096

# item and its position as a unit vector (x, y, z)
_Point = tuple[T, float, float, float]
_EMPTY: list[Any] = []
_EMPTY_BLOCK: tuple[list[Any], list[tuple[float, float, float]]] = ([], [])


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def _chord2(km: float) -> float:
    """The squared chord between two unit vectors ``km`` apart on the earth's surface.
    It grows with the distance, so chords order points exactly as distances do."""
    angle = min(km / EARTH_RADIUS_KM, math.pi)
    return (2 * math.sin(angle / 2)) ** 2


def _km(chord2: float) -> float:
    return _KM_PER_HALF_CHORD * math.asin(min(1.0, math.sqrt(chord2) / 2))


_KM_PER_HALF_CHORD = 2 * EARTH_RADIUS_KM


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
        # Each point is kept as a unit vector: a query measures it with a chord, three
        # subtractions and no trigonometry, and converts to kilometres only what it yields.
        self._cells: defaultdict[tuple[int, int], list[_Point[T]]] = defaultdict(list)
        # The points of the block of cells around a cell, made when a query first starts
        # in that cell (see nearest_in_any).
        self._blocks: dict[tuple[int, int], tuple[list[T], list[tuple[float, float, float]]]] = {}
        self.size = 0
        for item, lat, lon in points:
            self._cells[_key(lat, lon, cell_degrees)].append((item, *_unit(lat, lon)))
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

    def block(self, key: tuple[int, int]) -> tuple[list[T], list[tuple[float, float, float]]]:
        """The items and unit vectors of the cells within BLOCK cells of ``key`` (a square
        of 2 * BLOCK + 1 cells a side), kept once made (up to MAX_BLOCKS of them; empty
        ones are not kept)."""
        block = self._blocks.get(key)
        if block is None:
            i, j = key
            cells = self._cells
            points = [
                point
                for di in range(-BLOCK, BLOCK + 1)
                for dj in range(-BLOCK, BLOCK + 1)
                for point in cells.get((i + di, j + dj), _EMPTY)
            ]
            if not points:
                return _EMPTY_BLOCK
            block = ([p[0] for p in points], [(p[1], p[2], p[3]) for p in points])
            if len(self._blocks) >= MAX_BLOCKS:
                self._blocks = {}  # origins all over the map: start over rather than grow
            self._blocks[key] = block
        return block

    def within(
        self, lat: float, lon: float, radius_km: float, *, keep: Callable[[T], bool] | None = None
    ) -> list[Nearby[T]]:
        """Every point within ``radius_km`` (that ``keep`` accepts), nearest first."""
        query = _Query(lat, lon, radius_km)
        found: list[tuple[float, int, T]] = []
        seen: set[int] = set()
        for _, key in query.cells(radius_km, self.cell_degrees):
            query.collect((self,), key, seen, found, keep)
        return [Nearby(item, _km(chord2)) for chord2, _, item in sorted(found)]


class _Query:
    """One radius query: its constants, and the cells its box touches with a lower bound of
    the distance to each; shared by every grid the query reads."""

    __slots__ = ("lat", "limit", "lon", "radius_km", "x", "y", "z")

    def __init__(self, lat: float, lon: float, radius_km: float) -> None:
        self.lat, self.lon, self.radius_km = lat, lon, radius_km
        self.x, self.y, self.z = _unit(lat, lon)
        self.limit = _chord2(radius_km)

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

    def clearance(self, key: tuple[int, int], cell: float) -> float:
        """A lower bound of the distance from the origin to any point outside the block
        around ``key`` (see GridIndex.block); 0 where the block nears a pole or the
        antimeridian, which the block does not wrap."""
        i, j = key
        south, north = (i - BLOCK) * cell, (i + BLOCK + 1) * cell
        west, east = (j - BLOCK) * cell, (j + BLOCK + 1) * cell
        if not (south > -80.0 and north < 80.0 and west > -180.0 and east < 180.0):
            return 0.0
        # As in cells(): a flat distance with the narrowest longitude degree, less 1%.
        squeeze = math.cos(math.radians(max(abs(south), abs(north))))
        scale = 0.99 * KM_PER_DEGREE_LATITUDE
        return scale * min(
            self.lat - south,
            north - self.lat,
            squeeze * (self.lon - west),
            squeeze * (east - self.lon),
        )

    def collect(
        self,
        grids: Sequence[GridIndex[T]],
        key: tuple[int, int],
        seen: set[int],
        found: list[tuple[float, int, T]],
        keep: Callable[[T], bool] | None = None,
    ) -> None:
        """Add the points of one cell of each grid within the radius, and not yet ``seen``,
        to ``found`` as (squared chord, tie-break, item) heap entries."""
        x, y, z, limit = self.x, self.y, self.z, self.limit
        push = heapq.heappush
        for grid in grids:
            for item, px, py, pz in grid._cells.get(key, _EMPTY):
                chord2 = (px - x) ** 2 + (py - y) ** 2 + (pz - z) ** 2
                if chord2 > limit or id(item) in seen or (keep is not None and not keep(item)):
                    continue
                seen.add(id(item))
                push(found, (chord2, id(item), item))


def block_key(lat: float, lon: float, cell_degrees: float = CELL_DEGREES) -> tuple[int, int]:
    """The key of the cell holding (lat, lon): the block around it is GridIndex.block(key)."""
    return _key(lat, lon, cell_degrees)


def nearest_in_block(
    vectors: Sequence[tuple[float, float, float]],
    lat: float,
    lon: float,
    radius_km: float,
    limit: int,
    *,
    cell_degrees: float = CELL_DEGREES,
) -> tuple[list[tuple[int, float]], bool]:
    """The nearest ``limit`` of some points of the block around the cell of (lat, lon)
    (``vectors``: their unit vectors, as GridIndex.block gives them), of those within
    ``radius_km`` and nearer than the block's edge: each one's index in ``vectors`` and
    distance, nearest first. And whether no point outside the block can come before
    them or among them: true with ``limit`` points, or when the block holds the radius.

    Every point outside the block lies beyond its edge, so the points picked are the
    nearest of all; when they are fewer than ``limit``, more may lie beyond the edge.
    Chords are measured and sorted in C; only the points picked cost Python work.
    """
    query = _Query(lat, lon, radius_km)
    clearance = query.clearance(_key(lat, lon, cell_degrees), cell_degrees)
    if clearance <= 0:
        return [], False
    chords = list(map(math.dist, vectors, repeat((query.x, query.y, query.z))))
    bound = math.sqrt(min(query.limit, _chord2(clearance)))
    picked: list[tuple[int, float]] = []
    for i in sorted(range(len(chords)), key=chords.__getitem__):
        chord = chords[i]
        if chord > bound:
            break
        picked.append((i, _KM_PER_HALF_CHORD * math.asin(min(1.0, chord / 2))))
        if len(picked) == limit:
            return picked, True
    return picked, clearance >= radius_km


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
    query = _Query(lat, lon, radius_km)
    seen: set[int] = set()
    # First the block of cells around the origin's cell, kept by each grid: every point
    # nearer than the block's edge is in it, so those come out in order straight away.
    # A caller that wants more (a sparse area, a wide filter) goes on to the walk.
    key = _key(lat, lon, cell)
    clearance = query.clearance(key, cell)
    if clearance > 0:
        # The chords are measured, and sorted, in C: only what is yielded costs Python work.
        items: list[T] = []
        vectors: list[tuple[float, float, float]] = []
        for grid in grids:
            block_items, block_vectors = grid.block(key)
            items += block_items
            vectors += block_vectors
        chords = list(map(math.dist, vectors, repeat((query.x, query.y, query.z))))
        bound = math.sqrt(min(query.limit, _chord2(clearance)))
        for i in sorted(range(len(chords)), key=chords.__getitem__):
            chord = chords[i]
            if chord > bound:
                break
            item = items[i]
            if id(item) in seen or (keep is not None and not keep(item)):
                continue
            seen.add(id(item))
            yield Nearby(item, _KM_PER_HALF_CHORD * math.asin(min(1.0, chord / 2)))
        if clearance >= radius_km:
            return
    found: list[tuple[float, int, T]] = []
    read: set[tuple[int, int]] = set()
    ring = min(first_ring_km, radius_km)
    pop = heapq.heappop
    while True:
        # Every cell outside the box lies beyond ``ring``: a point nearer than a cell of
        # the box (its corners reach further) but beyond ``ring`` must wait for them.
        edge = math.inf if ring >= radius_km else _chord2(ring)
        for bound, key in sorted(query.cells(ring, cell)):
            if key in read:
                continue
            read.add(key)
            bound = min(_chord2(bound), edge)
            while found and found[0][0] <= bound:
                chord2, _, item = pop(found)
                yield Nearby(item, _km(chord2))
            query.collect(grids, key, seen, found, keep)
        while found and found[0][0] <= edge:
            chord2, _, item = pop(found)
            yield Nearby(item, _km(chord2))
        if ring >= radius_km:
            return
        ring = min(ring * 2, radius_km)
