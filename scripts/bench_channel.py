"""`scripts/bench.py channel`: channel answers against the empty handler, in one run.

    .venv/bin/python scripts/bench.py channel [--stores 1000 --skus 10000] [--duration 10]
        [--rounds 3] [--concurrency 64] [--writes 50] [--exposure exact|banded]

Data (built once into bench-data/): STORES stores and 5 warehouses, SKUS skus; every
warehouse holds every sku, each store 200 random skus; a `web` channel over the whole
network (one group), warehouses shipping with no protection, stores shipping above a
protection of 2, selling incoming; incoming supply (a purchase order to a warehouse) on
10% of skus. Locations have a freshness budget of 300 days, so the data set stays fresh.

Load: h2load repeats one body, so here the Node.js load generator of the mixed benchmark
(scripts/loadgen/loadgen.js, which outruns the empty handler on its one core) on CPU 1 (the
server is on CPU 0) sends GetAvailability(sku, channel web, EXACT) over every sku in turn,
each body serialized beforehand, --concurrency calls in flight on 4 connections; the
baseline is the same generator against bench.py's empty grpc.aio handler, sending the
same bodies. Each run starts where the last one stopped, so bodies are not resent until
every sku has been.
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
import struct
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import bench

GET = "/omnistock.v1.AvailabilityService/GetAvailability"
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


def bodies(skus: int, exposure: str = "exact") -> list[bytes]:
    """GetAvailability(sku, web) for every sku: EXACT (the whole answer, with its breakdown
    of up to 100 locations: an internal caller) or BANDED (a shopper's product page)."""
    from omnistock.v1 import availability_pb2, common_pb2

    value = common_pb2.EXPOSURE_EXACT if exposure == "exact" else common_pb2.EXPOSURE_BANDED
    return [
        availability_pb2.GetAvailabilityRequest(
            sku=sku_name(k), channel_id="web", exposure=value
        ).SerializeToString()
        for k in range(skus)
    ]


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

            # Values this data set has not held before: the data set is kept between runs,
            # and a write of the value already stored changes no answer.
            base = 1_000 + int(time.time()) % 1_000_000 * 100
            for n in range(writes):
                sku = sku_name(rng.randrange(skus))
                before = fulfil(sku)  # kept by the other process from here on
                stamp = Timestamp()
                stamp.FromDatetime(datetime.now(UTC))
                written = time.monotonic()
                writer.apply_stock_updates(
                    [
                        StockUpdate(
                            location_id="W0", sku=sku, on_hand=base + n, source_updated_at=stamp
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


def write_ops(path: Path, requests: list[bytes]) -> Path:
    """The bodies as the Node.js load generator reads them (scripts/loadgen/loadgen.js):
    every one a GetAvailability, sent in file order."""
    with path.open("wb") as out:
        for body in requests:
            out.write(struct.pack(">BII", 0, 0, len(body)) + body)
    return path


def channel(args: argparse.Namespace) -> None:
    import bench_mixed

    db = bench.prepare(
        f"channel-{args.stores}x{args.skus}",
        lambda path: build_channel_db(path, args.stores, args.skus),
    )
    requests = bodies(args.skus, args.exposure)
    ops = write_ops(Path(tempfile.mkdtemp()) / "channel.ops", requests)
    process, target = bench.start_server(f"sqlite:///{db}")
    baseline, baseline_url = bench.start_baseline()
    baseline_target = baseline_url.split("//")[1].split("/")[0]
    load = {"duration": args.duration, "connections": 4}
    try:
        started = time.monotonic()
        # Every sku once, so that the totals are kept before measuring.
        asked = asyncio.run(_warm(target, requests))
        print(f"  warmed {asked:,} skus in {time.monotonic() - started:.1f}s")
        print(
            f"  load: scripts/loadgen/loadgen.js on CPU {bench.LOAD_CPU}, {len(requests):,} distinct"
            f" bodies (one sku each, {args.exposure.upper()}), {args.concurrency} in flight"
        )
        peaks: dict[str, list[float]] = {"baseline": [], "GetAvailability (sku, web)": []}
        cpu: dict[str, list[float]] = {"baseline": [], "GetAvailability (sku, web)": []}
        start = 0
        for round_number in range(1, args.rounds + 1):
            base = bench_mixed.loadgen(
                baseline_target, ops, concurrency=args.concurrency, baseline=True, **load
            )
            ours = bench_mixed.loadgen(
                target, ops, concurrency=args.concurrency, start=start, **load
            )
            start = ours.next
            failed = {code: n for code, n in ours.codes.items() if code != "OK"}
            if failed:
                sys.exit(f"calls failed: {failed}")
            for name, run in (("baseline", base), ("GetAvailability (sku, web)", ours)):
                peaks[name].append(run.calls_per_s)
                cpu[name].append(run.cpu)
            print(
                f"  round {round_number}: baseline {base.calls_per_s:,.0f} QPS (generator CPU"
                f" {base.cpu:.0%}); ours {ours.calls_per_s:,.0f} QPS"
                f" ({ours.calls_per_s / base.calls_per_s:.2f} x)"
            )
        print()
        print("| measure | peak QPS | ratio | offered load | p50 | p99 |")
        print("|---|---|---|---|---|---|")
        for name, where, empty in (
            ("baseline", baseline_target, True), ("GetAvailability (sku, web)", target, False),
        ):  # fmt: skip
            peak = statistics.median(peaks[name])
            run = bench_mixed.loadgen(
                where, ops, rate=peak / 2, baseline=empty, start=start, **load
            )
            start = run.next if not empty else start
            ratio = peak / statistics.median(peaks["baseline"])
            print(
                f"| {name} | {peak:,.0f} | {ratio:.2f} x | {peak / 2:,.0f} QPS |"
                f" {run.p50_ms:.2f} ms | {run.p99_ms:.2f} ms |"
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
    parser.add_argument("--exposure", choices=["exact", "banded"], default="exact")
    parser.set_defaults(run=channel)
