"""SearchNearby against a brute-force haversine loop, anywhere on Earth, on both databases.

Random stores (around the shopper and anywhere: both sides of the antimeridian, near and
at both poles), random carts, radii up to the 500 km maximum and limits: the answer holds
exactly the nearest qualifying stores within the radius, nearest first, with their
distances.
"""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

from conftest import NOW
from factories import store, update
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omnistock.client import Client, LatLng, cart, origin
from omnistock.server.domain.geo import EARTH_RADIUS_KM

_examples = itertools.count()

latitudes = st.one_of(
    st.floats(-90, 90), st.sampled_from([-90.0, -89.9999, -89.5, 0.0, 89.5, 89.9999, 90.0])
)
longitudes = st.one_of(
    st.floats(-180, 180), st.sampled_from([-180.0, -179.9999, 0.0, 179.9999, 180.0])
)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def near(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    """The point ``km`` from (lat, lon) on ``bearing`` (radians)."""
    d = km / EARTH_RADIUS_KM
    phi, lam = math.radians(lat), math.radians(lon)
    phi2 = math.asin(
        max(
            -1.0,
            min(1.0, math.sin(phi) * math.cos(d) + math.cos(phi) * math.sin(d) * math.cos(bearing)),
        )
    )
    lam2 = lam + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(phi),
        math.cos(d) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(phi2), (math.degrees(lam2) + 180) % 360 - 180


placed = st.one_of(
    # Around the shopper: (distance as a share of 1.3 radii, bearing).
    st.tuples(st.just("near"), st.floats(0, 1.3), st.floats(0, 2 * math.pi)),
    # Anywhere on Earth.
    st.tuples(st.just("anywhere"), latitudes, longitudes),
)
stocks = st.lists(st.integers(0, 4), min_size=2, max_size=2)  # on hand of A and B


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shopper=st.tuples(latitudes, longitudes),
    stores=st.lists(st.tuples(placed, stocks), min_size=1, max_size=12),
    quantities=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    two_lines=st.booleans(),
    require_all=st.booleans(),
    radius_km=st.one_of(st.floats(1, 500), st.just(500.0)),
    limit=st.integers(1, 12),
)
def test_search_nearby_matches_a_brute_force_search(
    client: Client,
    shopper: tuple[float, float],
    stores: list[tuple[tuple[object, float, float], list[int]]],
    quantities: tuple[int, int],
    two_lines: bool,
    require_all: bool,
    radius_km: float,
    limit: int,
) -> None:
    n = next(_examples)  # each example its own skus and stores
    skus = [f"A{n}", f"B{n}"][: 2 if two_lines else 1]
    lat0, lon0 = shopper
    points = {}
    for i, ((kind, a, b), _) in enumerate(stores):
        point = near(lat0, lon0, a * radius_km, b) if kind == "near" else (a, b)
        points[f"G{n}-{i}"] = point
    distances = {sid: haversine_km(lat0, lon0, *p) for sid, p in points.items()}
    # A store on the radius itself, to float precision, could go either way.
    assume(all(abs(d - radius_km) > 1e-6 for d in distances.values()))
    client.upsert_locations(
        [store(sid, position=LatLng(latitude=p[0], longitude=p[1])) for sid, p in points.items()]
    )
    at = NOW - timedelta(minutes=10)
    client.apply_stock_updates(
        [
            update(sid, sku, on_hand, at)
            for (sid, (_, on_hands)) in zip(points, stores, strict=True)
            for sku, on_hand in zip(skus, on_hands, strict=False)
        ]
    )
    wanted = dict(zip(skus, quantities, strict=False))
    needed = len(skus) if require_all else 1
    qualifying = sorted(
        (distances[sid], sid)
        for (sid, (_, on_hands)) in zip(points, stores, strict=True)
        if distances[sid] <= radius_km
        and sum(have >= wanted[sku] for sku, have in zip(skus, on_hands, strict=False)) >= needed
    )
    result = client.search_nearby(
        cart(wanted),
        origin(latitude=lat0, longitude=lon0),
        radius_km=radius_km,
        limit=limit,
        require_all=require_all,
    )

    got = [loc.location_id for loc in result.locations]
    assert len(got) == min(limit, len(qualifying))
    expected = {sid for _, sid in qualifying}
    assert set(got) <= expected
    exact = [distances[sid] for sid in got]
    assert all(a <= b + 1e-7 for a, b in itertools.pairwise(exact)), "nearest first"
    for loc in result.locations:
        assert abs(loc.distance_km - distances[loc.location_id]) <= 5e-4 + 1e-9
    if got:
        # Every qualifying store nearer than the last one listed is listed.
        assert {sid for d, sid in qualifying if d < exact[-1] - 1e-7} <= set(got)
