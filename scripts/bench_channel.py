"""`scripts/bench.py channel`: channel answers against the empty handler, in one run.

    .venv/bin/python scripts/bench.py channel [--stores 1000 --skus 10000] [--duration 10]
        [--rounds 3] [--concurrency 64] [--writes 50]

Data (built once into bench-data/): STORES stores and 5 warehouses, SKUS skus; every
warehouse holds every sku, each store 200 random skus; a `web` channel over the whole
network (one group), warehouses shipping with no protection, stores shipping above a
protection of 2, selling incoming; incoming supply (a purchase order to a warehouse) on
10% of skus. Locations have a freshness budget of 300 days, so the data set stays fresh.

Load: h2load repeats one body, so here a grpc.aio client on CPU 1 (the server is on
CPU 0) sends GetAvailability(sku, channel web, EXACT) over every sku in turn, each body
serialized beforehand, --concurrency calls in flight on 4 connections; the baseline is
the same client against bench.py's empty grpc.aio handler, sending the same bodies.
Every sku is asked once before measuring (the totals are then kept). Peak QPS alternates
baseline and ours for --rounds rounds (ratio: the median of the rounds); then latency
under Poisson arrivals at half of each one's own median peak.

Cross-process visibility: two server processes on the same database; --writes times, a
feed write (ApplyStockUpdates) to one store through the first, then the second's channel
answer for that sku polled until it shows the write; p50/p99/max of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import bench

GET = "/omnistock.v1.AvailabilityService/GetAvailability"
EMPTY = "/bench.Empty/Call"
PER_STORE = 200
WAREHOUSES = 5


def build_channel_db(path: Path, stores: int, skus: int) -> None:
    from omnistock.server.domain.channels import Channel, LocationGroup
    from omnistock.server.domain.locations import Capabilities, Location, LocationKind
    from omnistock.server.domain.timeutil import to_micros
    from omnistock.server.store.channels import ChannelRepository
    from omnistock.server.store.incoming import IncomingStore, IncomingUpdate
    from omnistock.server.store.locations import LocationRepository

    now = datetime.now(UTC)
    rng = random.Random(7)
    budget = timedelta(days=300)
    warehouses = [
        Location(
            id=f"W{i}", kind=LocationKind.WAREHOUSE, name=f"Warehouse {i}",
            time_zone="Europe/Amsterdam", latitude=52.0, longitude=5.0 + i / 10, country="NL",
            capabilities=Capabilities(ship_from=True), shipping_days=1, freshness_budget=budget,
        )
        for i in range(WAREHOUSES)
    ]  # fmt: skip
    shops = [
        Location(
            id=f"S{i:05d}", kind=LocationKind.STORE, name=f"Store {i}",
            time_zone="Europe/Amsterdam", latitude=rng.uniform(50.8, 53.4),
            longitude=rng.uniform(3.6, 7.1), country="NL",
            capabilities=Capabilities(pickup=True, ship_from=True, ship_to_store=True),
            pickup_lead_time_minutes=30, freshness_budget=budget,
        )
        for i in range(stores)
    ]  # fmt: skip
    names = [sku_name(k) for k in range(skus)]
    with bench.building(path) as engine:
        LocationRepository(engine).upsert_many([*warehouses, *shops], now=now)
        snapshots = (
            (loc.id, [(sku, rng.randint(0, 40), None) for sku in picks])
            for loc, picks in [
                *((w, names) for w in warehouses),
                *((s, rng.sample(names, min(PER_STORE, skus))) for s in shops),
            ]
        )
        print(f"  {bench.load_snapshots(engine, snapshots, now):,} stock records")
        channels = ChannelRepository(engine)
        ids = frozenset(loc.id for loc in [*warehouses, *shops])
        channels.upsert_groups([LocationGroup("network", "Network", ids)], now=now)
        channels.upsert_channels(
            [
                Channel(
                    "web", "Web shop", "network",
                    protection={w.id: 0 for w in warehouses},
                    default_protection=2, sells_incoming=True,
                )
            ],
            now=now,
        )  # fmt: skip
        due = date.today() + timedelta(days=200)
        lines = [
            IncomingUpdate(f"W{k % WAREHOUSES}", names[k], f"PO-{k}", 50, due, to_micros(now))
            for k in range(0, skus, 10)
        ]
        IncomingStore(engine).apply(lines, now_us=to_micros(now))
        print(f"  {len(lines):,} incoming lines")


def sku_name(k: int) -> str:
    return f"SKU-{k:06d}"


def bodies(skus: int) -> list[bytes]:
    from omnistock.v1 import availability_pb2

    return [
        availability_pb2.GetAvailabilityRequest(
            sku=sku_name(k), channel_id="web", exposure=1
        ).SerializeToString()
        for k in range(skus)
    ]


async def _drive(
    target: str, path: str, requests: list[bytes], *, duration: float, concurrency: int,
    rate: float | None = None,
) -> tuple[float, list[float], int]:  # fmt: skip
    """Closed loop (rate None) or Poisson arrivals at ``rate``: (QPS, latencies ms, errors)."""
    import grpc
    from grpc import aio

    channels = [aio.insecure_channel(target) for _ in range(4)]
    calls = [c.unary_unary(path) for c in channels]
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration
    counter = iter(range(10**12))

    async def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            await calls[i % 4](requests[i % len(requests)], timeout=10)
            latencies.append((time.perf_counter() - started) * 1000)
        except grpc.RpcError:
            errors += 1

    async def worker() -> None:
        while time.monotonic() < stop_at:
            await one(next(counter))

    started = time.monotonic()
    if rate is None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        rng = random.Random(3)
        tasks = set()
        next_at = time.monotonic()
        while next_at < stop_at:
            next_at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            task = asyncio.create_task(one(next(counter)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    for c in channels:
        await c.close()
    return len(latencies) / elapsed, latencies, errors


def drive(
    target: str, path: str, requests: list[bytes], **options: Any
) -> tuple[float, list[float], int]:
    with bench.on_cpu(bench.LOAD_CPU):
        return asyncio.run(_drive(target, path, requests, **options))


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(sorted(latencies), n=100, method="inclusive")[98]


def visibility(database_url: str, stores: int, skus: int, writes: int) -> list[float]:
    """Seconds from a feed write through one process until another's channel answer shows it."""
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp
    from omnistock.client import Client, StockUpdate
    from omnistock.v1 import availability_pb2, availability_pb2_grpc

    one, one_target = bench.start_server(database_url)
    other, other_target = bench.start_server(database_url)
    seen: list[float] = []
    try:
        with Client(one_target) as writer, grpc.insecure_channel(other_target) as channel:
            stub = availability_pb2_grpc.AvailabilityServiceStub(channel)
            rng = random.Random(5)

            def fulfil(sku: str) -> int:
                request = availability_pb2.GetAvailabilityRequest(
                    sku=sku, channel_id="web", exposure=1
                )
                return stub.GetAvailability(request).channel_availability.available_to_fulfil

            for n in range(writes):
                sku = sku_name(rng.randrange(skus))
                before = fulfil(sku)  # kept by the other process from here on
                stamp = Timestamp()
                stamp.FromDatetime(datetime.now(UTC))
                written = time.monotonic()
                writer.apply_stock_updates(
                    [
                        StockUpdate(
                            location_id="W0", sku=sku, on_hand=1_000 + n, source_updated_at=stamp
                        )
                    ]
                )
                while fulfil(sku) == before:
                    if time.monotonic() - written > 5:
                        sys.exit("a write never reached the other process")
                seen.append(time.monotonic() - written)
    finally:
        bench.stop(one)
        bench.stop(other)
    return seen


def channel(args: argparse.Namespace) -> None:
    db = bench.prepare(
        f"channel-{args.stores}x{args.skus}",
        lambda path: build_channel_db(path, args.stores, args.skus),
    )
    requests = bodies(args.skus)
    process, target = bench.start_server(f"sqlite:///{db}")
    baseline, baseline_url = bench.start_baseline()
    baseline_target = baseline_url.split("//")[1].split("/")[0]
    load = {"duration": args.duration, "concurrency": args.concurrency}
    try:
        started = time.monotonic()
        _, _, errors = drive(target, GET, requests, duration=1, concurrency=args.concurrency)
        # Every sku once, so that the totals are kept before measuring.
        asked = asyncio.run(_warm(target, requests))
        print(f"  warmed {asked:,} skus in {time.monotonic() - started:.1f}s")
        peaks: dict[str, list[float]] = {"baseline": [], "GetAvailability (sku, web)": []}
        for round_number in range(1, args.rounds + 1):
            base, _, _ = drive(baseline_target, EMPTY, requests, **load)
            ours, _, errors = drive(target, GET, requests, **load)
            if errors:
                sys.exit(f"{errors} calls failed: errors, not answers")
            peaks["baseline"].append(base)
            peaks["GetAvailability (sku, web)"].append(ours)
            print(
                f"  round {round_number}: baseline {base:,.0f} QPS; ours {ours:,.0f} QPS ({ours / base:.2f} x)"
            )
        print()
        print("| measure | peak QPS | ratio | offered load | p50 | p99 |")
        print("|---|---|---|---|---|---|")
        for name, path, where in (
            ("baseline", EMPTY, baseline_target), ("GetAvailability (sku, web)", GET, target),
        ):  # fmt: skip
            peak = statistics.median(peaks[name])
            _, latencies, _ = drive(where, path, requests, rate=peak / 2, **load)
            ratio = peak / statistics.median(peaks["baseline"])
            p50 = statistics.median(latencies)
            print(
                f"| {name} | {peak:,.0f} | {ratio:.2f} x | {peak / 2:,.0f} QPS | {p50:.2f} ms | {p99(latencies):.2f} ms |"
            )
    finally:
        bench.stop(baseline)
        bench.stop(process)
    seen = sorted(visibility(f"sqlite:///{db}", args.stores, args.skus, args.writes))
    print()
    print(
        f"cross-process visibility of a feed write (SQLite, {len(seen)} writes): p50"
        f" {statistics.median(seen) * 1000:.1f} ms, p99 {p99([s * 1000 for s in seen]):.1f} ms,"
        f" max {seen[-1] * 1000:.1f} ms"
    )


async def _warm(target: str, requests: list[bytes]) -> int:
    from grpc import aio

    async with aio.insecure_channel(target) as c:
        call = c.unary_unary(GET)
        for start in range(0, len(requests), 64):
            await asyncio.gather(*(call(body, timeout=30) for body in requests[start : start + 64]))
    return len(requests)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "channel",
        help="GetAvailability (sku, web channel) vs baseline, and cross-process visibility",
    )
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--writes", type=int, default=50)
    parser.set_defaults(run=channel)
