"""The mixed benchmark's data and operations (scripts/bench_mixed.py): the data set, built once
and copied fresh for each run, and the operations, drawn and encoded before the clock starts into
the file scripts/loadgen/loadgen.js sends from."""

from __future__ import annotations

import argparse
import bisect
import os
import random
import shutil
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench

# Dutch cities the searches start from (jittered by up to ~5 km so every body differs).
CITIES = [
    (52.3731, 4.8926), (51.9225, 4.4792), (52.0705, 4.3007), (52.0907, 5.1214), (51.4416, 5.4697),
    (53.2194, 6.5665), (51.5555, 5.0913), (51.8126, 5.8372), (52.2215, 6.8937), (51.5866, 4.7760),
    (52.1601, 4.4970), (52.3874, 4.6462), (52.5168, 6.0830), (50.8514, 5.6910), (52.2112, 5.9699),
]  # fmt: skip
KINDS = ("GetAvailability", "BatchGetAvailability", "SearchNearby", "CreateReservation+Release")
MIX = (0.80, 0.10, 0.05, 0.05)
KEY_PLACEHOLDER = b"K" * 32
EXACT = 1  # omnistock.v1.Exposure.EXPOSURE_EXACT

# ---------------------------------------------------------------- data


def mixed_locations(stores: int) -> list[Any]:
    from omnistock.server.domain.locations import Capabilities, Location, LocationKind, WeeklyHours

    rng = random.Random(1)
    hours = tuple(
        WeeklyHours(d, datetime.min.time().replace(hour=8), datetime.min.time().replace(hour=22))
        for d in range(1, 8)
    )
    # A freshness budget of a year: the data set is built once and reused, and its age is
    # not what this benchmark measures (holds refuse stock older than the budget).
    return [
        Location(id=f"S{i:05d}", kind=LocationKind.STORE, name=f"Store {i}", time_zone="Europe/Amsterdam",
                 latitude=rng.uniform(50.8, 53.4), longitude=rng.uniform(3.6, 7.1), country="NL",
                 weekly_hours=hours, capabilities=Capabilities(pickup=True, ship_to_store=True),
                 pickup_lead_time_minutes=30, freshness_budget=timedelta(days=365))
        for i in range(stores)
    ]  # fmt: skip


def load_mixed(engine: Any, stores: int, skus: int) -> None:
    from omnistock.server.store.locations import LocationRepository

    now = datetime.now(UTC)
    locations = mixed_locations(stores)
    LocationRepository(engine).upsert_many(locations, now=now)
    rng = random.Random(2)
    snapshots = (
        (loc.id, [(sku_id(k), rng.randint(0, 40), None) for k in range(skus)]) for loc in locations
    )
    print(f"  {bench.load_snapshots(engine, snapshots, now):,} stock records")


def sku_id(k: int) -> str:
    return f"SKU-{k:06d}"


def postgres_url(database: str) -> str:
    base = os.environ.get(
        "OMNISTOCK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    return base.rsplit("/", 1)[0] + "/" + database


def mixed_database(kind: str, stores: int, skus: int, tmp: Path) -> str:
    """A fresh copy of the cached data set (built on first use); returns its URL."""
    name = f"mixed-{stores}x{skus}"
    if kind == "sqlite":
        bench.DATA_DIR.mkdir(exist_ok=True)
        cached = bench.DATA_DIR / f"{name}.db"
        if not cached.exists():
            print(f"building the data set {name} (SQLite) ...")
            with bench.building(cached) as engine:
                load_mixed(engine, stores, skus)
        copy = tmp / "mixed.db"
        shutil.copyfile(cached, copy)
        return f"sqlite:///{copy}"
    from omnistock.server.store.database import create_database_engine, migrate
    from sqlalchemy import create_engine, text

    template = "omnistock_bench_" + name.replace("-", "_")
    run = "omnistock_bench_mixed_run"
    admin = create_engine(postgres_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        have = {row[0] for row in connection.execute(text("SELECT datname FROM pg_database"))}
        if template not in have:
            print(f"building the data set {name} (PostgreSQL database {template}) ...")
            connection.execute(text(f"DROP DATABASE IF EXISTS {template}_partial"))
            connection.execute(text(f"CREATE DATABASE {template}_partial"))
            engine = create_database_engine(postgres_url(f"{template}_partial"))
            started = time.monotonic()
            migrate(engine)
            load_mixed(engine, stores, skus)
            engine.dispose()
            connection.execute(text(f"ALTER DATABASE {template}_partial RENAME TO {template}"))
            print(f"  built {template} in {time.monotonic() - started:.0f}s")
        connection.execute(text(f"DROP DATABASE IF EXISTS {run}"))
        connection.execute(text(f"CREATE DATABASE {run} TEMPLATE {template}"))
    admin.dispose()
    return postgres_url(run)


# ---------------------------------------------------------------- the operations


class Zipf:
    """Ranks 0..n-1 with P(k) proportional to 1 / (k + 1) ** s, mapped onto a shuffled id order
    so the hot skus are spread over the id space."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        total, self.cdf = 0.0, []
        for k in range(n):
            total += 1 / (k + 1) ** s
            self.cdf.append(total)
        self.total = total
        self.order = list(range(n))
        rng.shuffle(self.order)

    def draw(self, rng: random.Random) -> int:
        return self.order[bisect.bisect_left(self.cdf, rng.random() * self.total)]


def encode_ops(args: argparse.Namespace, path: Path) -> dict[str, int]:
    """Write args.ops operations of the mix to PATH in loadgen.js's format; returns the count
    of distinct bodies per kind."""
    from omnistock.client import cart, origin
    from omnistock.v1 import availability_pb2 as a
    from omnistock.v1 import reservation_pb2 as r

    rng = random.Random(7)
    skus = Zipf(args.skus, args.zipf, rng)

    store_ids = [f"S{i:05d}" for i in range(args.stores)]
    sku_ids = [sku_id(k) for k in range(args.skus)]
    random_ = rng.random

    def store() -> str:
        return store_ids[int(random_() * len(store_ids))]

    def sku() -> str:
        return sku_ids[skus.draw(rng)]

    bodies: list[set[bytes]] = [set(), set(), set(), set()]
    with path.open("wb") as out:
        for _ in range(args.ops):
            kind = rng.choices(range(4), MIX)[0]
            key_offset = 0
            if kind == 0:
                stores = sorted({store() for _ in range(rng.randint(1, 5))})
                message: Any = a.GetAvailabilityRequest(
                    sku=sku(), location_ids=stores, exposure=EXACT
                )
            elif kind == 1:
                message = a.BatchGetAvailabilityRequest(
                    items=[a.SkuLocation(sku=sku(), location_id=store()) for _ in range(50)],
                    exposure=EXACT,
                )
            elif kind == 2:
                lat, lon = rng.choice(CITIES)
                message = a.SearchNearbyRequest(
                    lines=cart({sku(): 1 for _ in range(rng.randint(1, 3))}),
                    origin=origin(
                        latitude=lat + rng.uniform(-0.04, 0.04),
                        longitude=lon + rng.uniform(-0.06, 0.06),
                    ),
                    radius_km=25,
                    limit=10,
                    exposure=EXACT,
                )
            else:
                lines = {sku() for _ in range(rng.randint(1, 2))}
                message = r.CreateReservationRequest(
                    location_id=store(),
                    lines=[r.ReservationLine(sku=s, quantity=1) for s in sorted(lines)],
                    method=r.RESERVATION_METHOD_CHECKOUT,
                    idempotency_key=KEY_PLACEHOLDER.decode(),
                )
            body = message.SerializeToString()
            if kind == 3:
                key_offset = body.index(KEY_PLACEHOLDER)
            bodies[kind].add(body)
            out.write(struct.pack(">BII", kind, key_offset, len(body)) + body)
    return {KINDS[k]: len(b) for k, b in enumerate(bodies)}
