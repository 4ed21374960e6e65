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
    """Half the height and width, in degrees, of a box holding a circle of ``radius_km``
    around a point at ``lat``. The width is 180 (every longitude) when the circle holds
    a pole; otherwise the exact half-width of the circle (asin(sin r / cos lat))."""
    angle = min(radius_km / EARTH_RADIUS_KM, math.pi)
    dlat = math.degrees(angle)
    if abs(lat) + dlat >= 90.0:
        return dlat, 180.0
    ratio = math.sin(angle) / math.cos(math.radians(lat))
    return dlat, 180.0 if ratio >= 1.0 else math.degrees(math.asin(ratio))


def normalize_longitude(lon: float) -> float:
    """The same meridian in [-180, 180): +180 is -180."""
    return lon if -180.0 <= lon < 180.0 else ((lon + 180.0) % 360.0) - 180.0


def _haversine(angle_degrees: float) -> float:
    return math.sin(math.radians(angle_degrees) / 2) ** 2


def _km_of_haversine(h: float) -> float:
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


@dataclass(slots=True)  # not frozen: a search makes one per candidate, and frozen costs 2x
class Nearby(Generic[T]):
    item: T
    distance_km: float


CELL_DEGREES = 0.02
# The cell sizes of the index's levels, as multiples of the finest: a wide search reads
# the finest level whose cells in its box number at most MAX_CELLS. Each size divides
# 180 degrees, so the cells of every level tile the globe.
LEVEL_SCALES = (1, 5, 25, 125, 750)  # 0.02, 0.1, 0.5, 2.5 and 15 degrees
# The most cells one ring of a search reads. Rings double from 4 km, so a search of the
# largest radius (500 km) has 8 and reads at most 8 * MAX_CELLS cells, whatever its
# latitude (DESIGN.md, "Bounded work").
MAX_CELLS = 1_024


@dataclass(slots=True)
class Work:
    """What one walk did, for callers (and tests) that count it."""

    cells_read: int = 0
    candidates: int = 0


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


def _column(j: int, cell: float) -> int:
    """A column key wrapped onto the globe: [-180/cell, 180/cell)."""
    half = round(180 / cell)
    return (j + half) % (2 * half) - half


def _key(lat: float, lon: float, cell: float) -> tuple[int, int]:
    return (math.floor(lat / cell), _column(math.floor(normalize_longitude(lon) / cell), cell))


class GridIndex(Generic[T]):
    """Points bucketed into cells of ``cell_degrees`` (and, made when a wide search first
    needs them, coarser levels of cells); a radius query reads only cells its box
    touches, nearest first, then measures the real distance of each candidate.

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
        self._points: list[tuple[_Point[T], float, float]] = []
        cells: defaultdict[tuple[int, int], list[_Point[T]]] = defaultdict(list)
        for item, lat, lon in points:
            point = (item, *_unit(lat, lon))
            self._points.append((point, lat, lon))
            cells[_key(lat, lon, cell_degrees)].append(point)
        # Level 0 is the finest; coarser ones are made on first use.
        self._levels: list[dict[tuple[int, int], list[_Point[T]]] | None] = [dict(cells)]
        self._levels += [None] * (len(LEVEL_SCALES) - 1)
        # The points of the block of cells around a cell, made when a query first starts
        # in that cell (see nearest_in_any).
        self._blocks: dict[tuple[int, int], tuple[list[T], list[tuple[float, float, float]]]] = {}
        self.size = len(self._points)

    def cells_at(self, level: int) -> dict[tuple[int, int], list[_Point[T]]]:
        """The cells of one level (cell_degrees * LEVEL_SCALES[level] a side)."""
        cells = self._levels[level]
        if cells is None:
            size = self.cell_degrees * LEVEL_SCALES[level]
            made: defaultdict[tuple[int, int], list[_Point[T]]] = defaultdict(list)
            for point, lat, lon in self._points:
                made[_key(lat, lon, size)].append(point)
            cells = self._levels[level] = dict(made)
        return cells

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
            cells = self.cells_at(0)
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
        return list(nearest_in_any([self], lat, lon, radius_km, keep=keep))


def _gap_degrees(lon: float, west: float, width: float) -> float:
    """The smallest longitude difference, in [0, 180], from ``lon`` to the span of
    ``width`` degrees that starts at ``west``, around the globe either way."""
    start = (west - lon + 180.0) % 360.0 - 180.0  # the span's start, seen from lon
    end = start + width
    if start <= 0.0 <= end:
        return 0.0
    if start > 0.0:
        return min(start, 360.0 - end, 180.0)
    return min(-end, 360.0 + start, 180.0)


class _Query:
    """One radius query: its constants, and the cells its box touches with a lower bound of
    the distance to each; shared by every grid the query reads."""

    __slots__ = ("cos_lat", "lat", "limit", "lon", "radius_km", "x", "y", "z")

    def __init__(self, lat: float, lon: float, radius_km: float) -> None:
        self.lat, self.lon, self.radius_km = lat, normalize_longitude(lon), radius_km
        self.cos_lat = math.cos(math.radians(lat))
        self.x, self.y, self.z = _unit(lat, lon)
        self.limit = _chord2(radius_km)

    def _box(self, box_km: float, cell: float) -> tuple[range, range, int]:
        """The rows and (unwrapped) columns of cells of the box holding a circle of
        ``box_km``, and the number of columns around the globe."""
        lat, lon = self.lat, self.lon
        dlat, dlon = degree_box(lat, box_km)
        wrap = round(360 / cell)
        rows = range(
            math.floor(max(-90.0, lat - dlat) / cell), math.floor(min(90.0, lat + dlat) / cell) + 1
        )
        west, east = math.floor((lon - dlon) / cell), math.floor((lon + dlon) / cell)
        if dlon >= 180.0 or east - west + 1 >= wrap:
            half = wrap // 2
            return rows, range(-half, wrap - half), wrap
        return rows, range(west, east + 1), wrap

    def level_for(self, box_km: float, cell: float) -> int:
        """The finest level whose cells in the box number at most MAX_CELLS."""
        for level, scale in enumerate(LEVEL_SCALES):
            rows, columns, _ = self._box(box_km, cell * scale)
            if len(rows) * len(columns) <= MAX_CELLS:
                return level
        return len(LEVEL_SCALES) - 1

    def cells(self, box_km: float, cell: float) -> list[tuple[float, tuple[int, int]]]:
        """The cells of the box holding a circle of ``box_km``, each with a lower bound of
        the distance from the origin to any point in it.

        The bound is the haversine formula at its least over the cell:
        hav(d) = hav(dlat) + cos(lat1) cos(lat2) hav(dlon) >= hav(the least dlat)
        + cos(lat1) cos(the cell's latitude furthest from the equator) hav(the least
        dlon), which holds over the poles and across the antimeridian too.
        """
        lat, lon = self.lat, self.lon
        rows, columns, _ = self._box(box_km, cell)
        row_bounds = []
        for i in rows:
            south, north = max(-90.0, i * cell), min(90.0, (i + 1) * cell)
            far = max(abs(south), abs(north))
            row_bounds.append(
                (
                    i,
                    _haversine(max(0.0, south - lat, lat - north)),
                    self.cos_lat * math.cos(math.radians(far)),
                )
            )
        # Column keys wrap around the antimeridian.
        column_bounds = [
            (_column(j, cell), _haversine(_gap_degrees(lon, j * cell, cell))) for j in columns
        ]
        return [
            (_km_of_haversine(down + squeeze * across), (i, j))
            for i, down, squeeze in row_bounds
            for j, across in column_bounds
        ]

    def clearance(self, key: tuple[int, int], cell: float) -> float:
        """A lower bound of the distance from the origin to any point outside the block
        around ``key`` (see GridIndex.block); 0 where the block nears a pole or the
        antimeridian, which the block does not wrap."""
        i, j = key
        south, north = (i - BLOCK) * cell, (i + BLOCK + 1) * cell
        west, east = (j - BLOCK) * cell, (j + BLOCK + 1) * cell
        if not (south > -89.0 and north < 89.0 and west >= -180.0 and east <= 180.0):
            return 0.0
        # Outside the block a point is north or south of it, or within its latitudes
        # and east or west of it (the haversine bound of cells()).
        far = max(abs(south), abs(north))
        return min(
            _km_of_haversine(_haversine(min(self.lat - south, north - self.lat))),
            _km_of_haversine(
                self.cos_lat
                * math.cos(math.radians(far))
                * _haversine(min(self.lon - west, east - self.lon))
            ),
        )

    def collect(
        self,
        cells: Sequence[dict[tuple[int, int], list[_Point[T]]]],
        key: tuple[int, int],
        seen: set[int],
        found: list[tuple[float, int, T]],
        keep: Callable[[T], bool] | None = None,
    ) -> None:
        """Add the points of one cell of each grid (``cells``: each grid's cells of one
        level) within the radius, and not yet ``seen``, to ``found`` as (squared chord,
        tie-break, item) heap entries."""
        x, y, z, limit = self.x, self.y, self.z, self.limit
        push = heapq.heappush
        for grid_cells in cells:
            for item, px, py, pz in grid_cells.get(key, _EMPTY):
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
    work: Work | None = None,
) -> Iterator[Nearby[T]]:
    """The points of several grids (of one cell size) within ``radius_km``, each once,
    nearest first (see nearest_in_any_pausing)."""
    for near in nearest_in_any_pausing(
        grids, lat, lon, radius_km, first_ring_km=first_ring_km, keep=keep, work=work
    ):
        if near is not None:
            yield near


# A walk that yields nothing for this many cells read yields None, so that an async
# caller can let others run (a wide search through rings of cells that hold nothing
# yet held the event loop 6 ms).
PAUSE_CELLS = 32


def nearest_in_any_pausing(
    grids: Sequence[GridIndex[T]],
    lat: float,
    lon: float,
    radius_km: float,
    *,
    first_ring_km: float = 4.0,
    keep: Callable[[T], bool] | None = None,
    work: Work | None = None,
) -> Iterator[Nearby[T] | None]:
    """The points of several grids (of one cell size) within ``radius_km``, each once,
    nearest first, with None between them before and after each ring's cells are listed
    and every PAUSE_CELLS cells read: a moment where an async caller may pause.

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
    read: set[tuple[int, int, int]] = set()
    ring = min(first_ring_km, radius_km)
    pop = heapq.heappop
    while True:
        # Every cell outside the box lies beyond ``ring``: a point nearer than a cell of
        # the box (its corners reach further) but beyond ``ring`` must wait for them.
        edge = math.inf if ring >= radius_km else _chord2(ring)
        # A wide ring reads a coarser level, so that no ring reads more than MAX_CELLS.
        level = query.level_for(ring, cell)
        cells = [grid.cells_at(level) for grid in grids]
        yield None
        listed = sorted(query.cells(ring, cell * LEVEL_SCALES[level]))
        yield None
        since_pause = 0
        for bound, key in listed:
            if (level, *key) in read:
                continue
            read.add((level, *key))
            since_pause += 1
            if since_pause == PAUSE_CELLS:
                since_pause = 0
                yield None
            if work is not None:
                work.cells_read += 1
                work.candidates += sum(len(c.get(key, _EMPTY)) for c in cells)
            bound = min(_chord2(bound), edge)
            while found and found[0][0] <= bound:
                chord2, _, item = pop(found)
                yield Nearby(item, _km(chord2))
            query.collect(cells, key, seen, found, keep)
        while found and found[0][0] <= edge:
            chord2, _, item = pop(found)
            yield Nearby(item, _km(chord2))
        if ring >= radius_km:
            return
        ring = min(ring * 2, radius_km)
