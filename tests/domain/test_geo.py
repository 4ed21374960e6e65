"""Distances and the grid index."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnistock.server.domain.geo import GridIndex, distance_km


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
