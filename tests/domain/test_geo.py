"""Distances and the grid index."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnistock.server.domain.geo import (
    MAX_BLOCKS,
    MAX_CELLS,
    GridIndex,
    Work,
    block_key,
    distance_km,
    nearest_in_any,
    nearest_in_block,
)


def test_distance_between_amsterdam_and_utrecht_is_about_35_km() -> None:
    assert distance_km(52.3731, 4.8922, 52.0907, 5.1214) == pytest.approx(34.9, abs=0.5)


def test_distance_to_itself_is_zero() -> None:
    assert distance_km(52.0, 5.0, 52.0, 5.0) == 0.0


points = st.lists(st.tuples(st.floats(50.0, 54.0), st.floats(3.0, 8.0)), min_size=0, max_size=60)


@given(points, st.floats(50.0, 54.0), st.floats(3.0, 8.0), st.floats(0.5, 120.0))
def test_grid_finds_exactly_what_a_full_scan_finds(
    coords: list[tuple[float, float]], lat: float, lon: float, radius: float
) -> None:
    index = GridIndex([(i, la, lo) for i, (la, lo) in enumerate(coords)])
    expected = sorted(
        (i for i, (la, lo) in enumerate(coords) if distance_km(lat, lon, la, lo) <= radius),
        key=lambda i: distance_km(lat, lon, *coords[i]),
    )
    found = index.within(lat, lon, radius)
    assert sorted(n.item for n in found) == sorted(expected)
    assert [n.distance_km for n in found] == sorted(n.distance_km for n in found)


def test_grid_works_across_the_antimeridian() -> None:
    index = GridIndex([("east", 0.0, 179.95), ("west", 0.0, -179.95), ("far", 0.0, 170.0)])
    assert {n.item for n in index.within(0.0, 179.99, 20)} == {"east", "west"}


class Store:
    """An item compared by identity, as the search's Location objects are."""

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = lat, lon


# A city: many stores within a few cells of each other and of the shopper.
dense = st.lists(st.tuples(st.floats(52.2, 52.5), st.floats(4.7, 5.1)), max_size=60)


@given(
    dense,
    st.lists(st.lists(st.integers(0, 59), max_size=40), min_size=1, max_size=3),
    st.floats(52.25, 52.45),
    st.floats(4.75, 5.05),
    st.floats(0.5, 30.0),
)
def test_the_nearest_first_walk_over_several_grids_matches_a_full_scan(
    coords: list[tuple[float, float]],
    picks: list[list[int]],
    lat: float,
    lon: float,
    radius: float,
) -> None:
    # Each grid holds some of the stores; a store may sit in several (a store holding
    # several of a cart's skus) and must come out once.
    stores = [Store(la, lo) for la, lo in coords]
    groups = [[stores[i] for i in pick if i < len(stores)] for pick in picks]
    grids = [GridIndex([(s, s.lat, s.lon) for s in group]) for group in groups]
    found = list(nearest_in_any(grids, lat, lon, radius))
    present = {s for group in groups for s in group}
    expected = {s for s in present if distance_km(lat, lon, s.lat, s.lon) <= radius}
    assert len(found) == len({id(n.item) for n in found})
    # A point within a hair of the radius may fall either side: the walk measures chords.
    near_edge = {s for s in present if abs(distance_km(lat, lon, s.lat, s.lon) - radius) < 1e-6}
    assert {n.item for n in found} ^ expected <= near_edge
    assert [n.distance_km for n in found] == sorted(n.distance_km for n in found)
    for near in found:
        assert near.distance_km == pytest.approx(
            distance_km(lat, lon, near.item.lat, near.item.lon), abs=1e-6
        )


def test_the_walk_beyond_the_first_block_keeps_nearest_first_order() -> None:
    # Points spread over some 45 km: the first block holds a few, the rest come from
    # the walk, whose box corners reach beyond cells of the next ring.
    rng = random.Random(3)
    for _ in range(300):
        lat0, lon0 = rng.choice([(0.01, 0.01), (52.37, 4.89), (-33.9, 151.2)])
        stores = [
            Store(lat0 + rng.uniform(-0.2, 0.2), lon0 + rng.uniform(-0.2, 0.2)) for _ in range(60)
        ]
        grid = GridIndex([(s, s.lat, s.lon) for s in stores])
        found = list(nearest_in_any([grid], lat0, lon0, 50))
        expected = sorted(
            (s for s in stores if distance_km(lat0, lon0, s.lat, s.lon) <= 50),
            key=lambda s: distance_km(lat0, lon0, s.lat, s.lon),
        )
        assert [n.item for n in found] == expected


def test_a_grid_keeps_a_bounded_number_of_blocks() -> None:
    # Shoppers all over a dense area: each origin cell makes a block, and the grid keeps
    # at most MAX_BLOCKS of them; origins far from every point keep none.
    rng = random.Random(5)
    grid = GridIndex([(i, rng.uniform(52.0, 55.0), rng.uniform(5.0, 6.2)) for i in range(20_000)])
    made = 0
    for i in range(2 * MAX_BLOCKS):
        lat, lon = 52.01 + (i % 150) * 0.02, 5.01 + (i // 150) * 0.02
        made += len(list(nearest_in_any([grid], lat, lon, 1))) > 0
        list(nearest_in_any([grid], -40.0, -100.0 + i * 0.05, 1))
    assert made > MAX_BLOCKS  # the test did reach the bound
    assert 0 < len(grid._blocks) <= MAX_BLOCKS


@given(
    dense,
    st.floats(52.25, 52.45),
    st.floats(4.75, 5.05),
    st.floats(0.5, 30.0),
    st.integers(1, 12),
)
def test_the_block_answer_is_the_nearest_first_walk_when_it_says_it_is_whole(
    coords: list[tuple[float, float]], lat: float, lon: float, radius: float, limit: int
) -> None:
    # Distinct places: two stores at one distance may come out in either order.
    stores = [Store(la, lo) for la, lo in dict.fromkeys(coords)]
    grid = GridIndex([(s, s.lat, s.lon) for s in stores])
    items, vectors = grid.block(block_key(lat, lon))
    picked, whole = nearest_in_block(vectors, lat, lon, radius, limit)
    walk = [(n.item, n.distance_km) for n in nearest_in_any([grid], lat, lon, radius)][:limit]
    got = [(items[i], km) for i, km in picked]
    # Always the start of the walk's answer; all of it when it says it is whole.
    assert [s for s, _ in got] == [s for s, _ in walk[: len(got)]]
    assert [km for _, km in got] == pytest.approx([km for _, km in walk[: len(got)]])
    if whole:
        assert len(got) == len(walk)


# -- the whole globe: both sides of the antimeridian, both poles, radii up to the maximum

EDGE_LATITUDES = st.sampled_from([-90.0, -89.999, -89.5, -80.0, 0.0, 80.0, 89.5, 89.999, 90.0])
EDGE_LONGITUDES = st.sampled_from([-180.0, -179.999, -0.001, 0.0, 179.999, 180.0])
latitudes = st.floats(-90.0, 90.0) | EDGE_LATITUDES
longitudes = st.floats(-180.0, 180.0) | EDGE_LONGITUDES


@st.composite
def places_around(draw: st.DrawFn) -> tuple[float, float, list[tuple[float, float]]]:
    """An origin anywhere, and points: some near it (within a few degrees, wrapped onto
    the globe), some anywhere."""
    lat, lon = draw(latitudes), draw(longitudes)
    near = draw(st.lists(st.tuples(st.floats(-6.0, 6.0), st.floats(-60.0, 60.0)), max_size=40))
    points = []
    for dlat, dlon in near:
        plat = lat + dlat
        plon = lon + dlon
        if plat > 90.0:  # over the pole: the other side of the globe
            plat, plon = 180.0 - plat, plon + 180.0
        elif plat < -90.0:
            plat, plon = -180.0 - plat, plon + 180.0
        points.append((plat, (plon + 180.0) % 360.0 - 180.0))
    points += draw(st.lists(st.tuples(latitudes, longitudes), max_size=20))
    return lat, lon, points


@settings(max_examples=400, deadline=None)
@given(places_around(), st.floats(0.001, 500.0) | st.sampled_from([500.0, 20_000.0]))
def test_the_walk_matches_a_brute_force_haversine_scan_anywhere_on_earth(
    place: tuple[float, float, list[tuple[float, float]]], radius: float
) -> None:
    lat, lon, coords = place
    stores = [Store(la, lo) for la, lo in coords]
    grid = GridIndex([(s, s.lat, s.lon) for s in stores])
    found = list(nearest_in_any([grid], lat, lon, radius))
    measured = {id(s): distance_km(lat, lon, s.lat, s.lon) for s in stores}
    expected = {id(s) for s in stores if measured[id(s)] <= radius}
    near_edge = {id(s) for s in stores if abs(measured[id(s)] - radius) < 1e-6}
    got = [id(n.item) for n in found]
    assert len(got) == len(set(got))
    assert set(got) ^ expected <= near_edge
    # Nearest first (two at one distance may differ in the last bits), each at its true
    # distance.
    distances = [n.distance_km for n in found]
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(distances))
    for near in found:
        assert near.distance_km == pytest.approx(measured[id(near.item)], abs=1e-6)


def test_a_store_on_the_antimeridian_is_found_from_either_side() -> None:
    grid = GridIndex([("on +180", 10.0, 180.0), ("on -180", -10.0, -180.0)])
    assert [n.item for n in grid.within(10.0, 180.0, 1)] == ["on +180"]
    assert [n.item for n in grid.within(10.0, -180.0, 1)] == ["on +180"]
    assert [n.item for n in grid.within(-10.0, 179.9999, 1)] == ["on -180"]


def test_stores_around_a_pole_come_out_nearest_first() -> None:
    # Within a degree of the pole, on all sides of it.
    places = [(89.2, lon) for lon in range(-180, 180, 30)] + [(89.99, 90.0), (90.0, 0.0)]
    grid = GridIndex([((la, lo), la, lo) for la, lo in places])
    found = grid.within(89.9, -83.0, 200)
    expected = sorted(places, key=lambda p: distance_km(89.9, -83.0, *p))
    assert [n.item for n in found] == expected


@pytest.mark.parametrize(
    ("lat", "lon", "radius"),
    [(80.0, 20.0, 500.0), (78.0, 15.0, 500.0), (90.0, 0.0, 500.0), (-89.9, 45.0, 50.0),
     (52.09, 5.12, 500.0), (0.0, 180.0, 500.0)],
)  # fmt: skip
def test_a_wide_search_with_one_store_far_away_reads_a_bounded_number_of_cells(
    lat: float, lon: float, radius: float
) -> None:
    # One store, just inside the radius: the walk must read the whole box to find it.
    # Thousands of others elsewhere, so that the grid's cells are not all empty.
    rng = random.Random(1)
    others = [(("far", i), rng.uniform(-60, 60), rng.uniform(-180, 180)) for i in range(5_000)]
    target_lat = lat - (radius * 0.99) / 111.195 if lat > 0 else lat + (radius * 0.99) / 111.195
    grid = GridIndex([(("target", 0), target_lat, lon), *others])
    work = Work()
    found = [n.item for n in nearest_in_any([grid], lat, lon, radius, work=work)]
    assert ("target", 0) in found
    # Rings double from 4 km: 8 of them at 500 km, each reading at most MAX_CELLS cells.
    assert work.cells_read <= 8 * MAX_CELLS
