"""The production-shaped benchmark: `scripts/bench.py mixed --db sqlite|postgresql`.

A read-heavy mix modelled on YCSB's workload B, against the empty-handler baseline in the same run:

- data: STORES stores across the Netherlands, each with every one of SKUS skus (1,000 x 10,000 =
  10,000,000 stock records), built once into bench-data/ (SQLite) or a template database
  (PostgreSQL), and copied fresh for every run;
- operations: 80 % GetAvailability (one sku at 1 to 5 stores), 10 % BatchGetAvailability of 50
  pairs, 5 % SearchNearby (a 1- to 3-line cart, 25 km around a Dutch city, jittered), 5 %
  CreateReservation (1 or 2 lines) then ReleaseReservation of the hold it made. Skus follow a
  Zipf law (s = 0.99), stores are uniform: every body is different, and reads miss the cache;
- writes: a StreamDeltas stream at --delta-rate records/s throughout the mixed runs (random
  pairs of the same Zipf law, +-1 each);
- load: scripts/loadgen/loadgen.js (Node) on CPU 1, sending the pre-encoded bodies of ops.bin as
  gRPC frames on Node's HTTP/2 (--client grpc-js sends them through grpc-js, which costs about three
  times the CPU a call), closed loop for the peaks, open loop (Poisson arrivals) for latency; the
  server on CPU 0.

It prints: peaks (baseline and the mix, alternated for --rounds rounds; operations/s and calls/s,
the ratio in calls/s), the generator's own CPU at the baseline's peak and h2load's peak on the same
empty handler (the generator must outrun it), p50/p99 at half the mix's own peak and at half the
baseline's, the read cache's hit ratio from /metrics during the mixed peaks, and how long a written
record takes to show in a read from another connection.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench
from bench_mixed_data import EXACT, Zipf, encode_ops, mixed_database, postgres_url, sku_id

LOADGEN = Path(__file__).resolve().parent / "loadgen"


def register(commands: Any) -> None:
    """The `mixed` subcommand (called from bench.py's main())."""
    mixed_parser = commands.add_parser("mixed", help="YCSB-like read-heavy mix vs the baseline")
    mixed_parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    mixed_parser.add_argument("--stores", type=int, default=1_000)
    mixed_parser.add_argument("--skus", type=int, default=10_000)
    mixed_parser.add_argument("--zipf", type=float, default=0.99, help="the skus' Zipf exponent")
    mixed_parser.add_argument("--ops", type=int, default=300_000, help="distinct operations")
    mixed_parser.add_argument("--duration", type=float, default=10)
    mixed_parser.add_argument("--rounds", type=int, default=3)
    mixed_parser.add_argument("--connections", type=int, default=4)
    mixed_parser.add_argument("--concurrency", type=int, default=64, help="operations in flight")
    mixed_parser.add_argument(
        "--client",
        choices=["http2", "grpc-js"],
        default="http2",
        help="how loadgen.js sends: gRPC frames on Node's HTTP/2 (default), or through grpc-js",
    )
    mixed_parser.add_argument("--delta-rate", type=float, default=2_000, help="records/s")
    mixed_parser.add_argument("--probes", type=int, default=20, help="write-to-read samples")
    mixed_parser.set_defaults(run=mixed)


# ---------------------------------------------------------------- load


@dataclass
class Run:
    calls_per_s: float
    ops_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    kinds: dict[str, dict[str, float]]
    codes: dict[str, int]
    cpu: float
    max_send_lag_ms: float
    elapsed_s: float
    next: int  # the operation the next run starts at


def loadgen(
    target: str,
    ops: Path,
    *,
    duration: float,
    connections: int,
    concurrency: int = 0,
    rate: float = 0,
    baseline: bool = False,
    seed: int = 1,
    client: str = "http2",
    start: int = 0,
) -> Run:
    """One run of loadgen.js on the load generator's core."""
    node = shutil.which("node")
    if node is None:
        sys.exit("node not found: the load generator runs on Node.js")
    if client == "grpc-js" and not (LOADGEN / "node_modules" / "@grpc" / "grpc-js").exists():
        sys.exit("@grpc/grpc-js missing: run scripts/install (it installs scripts/loadgen)")
    command = [
        "taskset", "-c", str(bench.LOAD_CPU), node, str(LOADGEN / "loadgen.js"),
        "--target", target, "--ops", str(ops), "--duration", str(duration),
        "--connections", str(connections), "--seed", str(seed), "--client", client, "--start", str(start),
    ]  # fmt: skip
    command += ["--rate", str(rate)] if rate else ["--concurrency", str(concurrency)]
    if baseline:
        command.append("--baseline")
    elif bench.API_KEY:
        command += ["--key", bench.API_KEY]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return Run(**json.loads(output))


def metrics(url: str) -> dict[str, float]:
    """The read cache's counters from the server's /metrics."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        for name in ("omnistock_read_cache_hits", "omnistock_read_cache_misses"):
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                values[name] = float(line.split()[-1])
    return values


class Deltas:
    """A StreamDeltas stream at RATE records/s (batches of RATE/20 every 50 ms), +-1 on random
    pairs of the read law, for as long as it runs; `paused` stops the sending (the baseline's
    rounds), the stream stays open."""

    def __init__(self, target: str, args: argparse.Namespace) -> None:
        self.target, self.args = target, args
        self.running = threading.Event()
        self.done = threading.Event()
        self.sent = 0
        self.acked = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _requests(self) -> Iterator[Any]:
        from omnistock.v1 import feed_pb2

        rng = random.Random(11)
        skus = Zipf(self.args.skus, self.args.zipf, random.Random(7))
        per_batch = max(1, round(self.args.delta_rate / 20))
        next_at = time.monotonic()
        batch = 0
        while not self.done.is_set():
            if not self.running.wait(0.1):
                next_at = time.monotonic()
                continue
            next_at += per_batch / self.args.delta_rate
            time.sleep(max(0.0, next_at - time.monotonic()))
            now = datetime.now(UTC)
            records = []
            for _ in range(per_batch):
                record = feed_pb2.DeltaRecord(
                    location_id=f"S{rng.randrange(self.args.stores):05d}",
                    sku=sku_id(skus.draw(rng)),
                    adjustment=rng.choice((-1, 1)),
                )
                record.source_updated_at.FromDatetime(now)
                records.append(record)
            batch += 1
            self.sent += len(records)
            yield feed_pb2.StreamDeltasRequest(batch_id=str(batch), records=records)

    def _run(self) -> None:
        import grpc
        from omnistock.v1 import feed_pb2_grpc

        try:
            with grpc.insecure_channel(self.target) as channel:
                stub = feed_pb2_grpc.FeedServiceStub(channel)
                metadata = [("authorization", f"Bearer {bench.API_KEY}")] if bench.API_KEY else []
                for ack in stub.StreamDeltas(self._requests(), metadata=metadata):
                    self.acked += ack.applied_count + ack.stale_count
        except BaseException as error:  # reported at the end
            self.error = error

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=30)


def visibility(target: str, args: argparse.Namespace, samples: int) -> list[tuple[float, float]]:
    """Write a record (ApplyStockUpdates) and poll GetAvailability on another connection until
    it shows: (ms until acked, ms until seen), per sample. Each pair is read first, so its old
    value sits in the read cache as a hot record's would."""
    import grpc
    from omnistock.v1 import availability_pb2, availability_pb2_grpc, feed_pb2, feed_pb2_grpc

    metadata = [("authorization", f"Bearer {bench.API_KEY}")] if bench.API_KEY else []
    rng = random.Random(13)
    skus = Zipf(args.skus, args.zipf, random.Random(7))
    found = []
    with grpc.insecure_channel(target) as writes, grpc.insecure_channel(target) as reads:
        feeds = feed_pb2_grpc.FeedServiceStub(writes)
        availability = availability_pb2_grpc.AvailabilityServiceStub(reads)
        for i in range(samples):
            sku, store = sku_id(skus.draw(rng)), f"S{rng.randrange(args.stores):05d}"
            ask = availability_pb2.GetAvailabilityRequest(
                sku=sku, location_ids=[store], exposure=EXACT
            )
            availability.GetAvailability(ask, metadata=metadata)
            value = 500_000 + 1_000 * i
            update = feed_pb2.StockUpdate(location_id=store, sku=sku, on_hand=value)
            update.source_updated_at.FromDatetime(datetime.now(UTC))
            sent = time.perf_counter()
            feeds.ApplyStockUpdates(
                feed_pb2.ApplyStockUpdatesRequest(updates=[update]), metadata=metadata
            )
            acked = time.perf_counter()
            while True:
                reply = availability.GetAvailability(ask, metadata=metadata)
                if abs(reply.availabilities[0].on_hand - value) < 100:  # deltas move it +-1
                    break
                if time.perf_counter() - sent > 30:
                    sys.exit(f"a write to {sku} at {store} did not show in 30 s")
                time.sleep(0.0005)
            found.append(((acked - sent) * 1000, (time.perf_counter() - sent) * 1000))
            time.sleep(0.2)
    return found


def check_answers(target: str, args: argparse.Namespace) -> None:
    """One call of each kind through the SDK: the load asks for real answers, not errors."""
    from omnistock.client import Client, Exposure, ReservationMethod, ReservationState, origin

    with Client(target, api_key=bench.API_KEY) as client:
        assert client.get_availability(sku_id(1), ["S00000", "S00001"], exposure=Exposure.EXACT)
        found = client.search_nearby({sku_id(1): 1}, origin(latitude=52.37, longitude=4.89))
        held = client.create_reservation(
            "S00001", {sku_id(2): 1}, method=ReservationMethod.CHECKOUT
        )
        released = client.release_reservation(held.reservation_id)
    if released.state != ReservationState.RELEASED:
        sys.exit(f"SDK check: release {released.state}")
    print(f"  check: a search finds {len(found.locations)} stores within 25 km of Amsterdam")


# ---------------------------------------------------------------- the run


def quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def mixed(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {bench.LOAD_CPU})
    print(f"machine: {bench.machine()}")
    with tempfile.TemporaryDirectory(dir=bench.DATA_DIR if bench.DATA_DIR.exists() else None) as d:
        tmp = Path(d)
        ops = tmp / "ops.bin"
        distinct = encode_ops(args, ops)
        print(
            f"  {args.ops:,} operations; distinct bodies: "
            + ", ".join(f"{k} {n:,}" for k, n in distinct.items())
        )
        url = mixed_database(args.db, args.stores, args.skus, tmp)
        metrics_port = bench.free_port()
        server, target = bench.start_server(
            url, "--metrics-listen", f"127.0.0.1:{metrics_port}", secure=True
        )
        baseline, baseline_url = bench.start_baseline()
        baseline_target = baseline_url.removeprefix("http://").split("/", 1)[0]
        deltas = None
        try:
            check_answers(target, args)
            deltas = Deltas(target, args)
            measure(args, ops, target, baseline_target, baseline_url, metrics_port, deltas)
        finally:
            if deltas is not None:
                deltas.close()
            bench.stop(baseline)
            bench.stop(server)
            if args.db == "postgresql":
                from sqlalchemy import create_engine, text

                admin = create_engine(postgres_url("postgres"), isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.execute(text("DROP DATABASE IF EXISTS omnistock_bench_mixed_run"))
                admin.dispose()


def measure(
    args: argparse.Namespace,
    ops: Path,
    target: str,
    baseline_target: str,
    baseline_url: str,
    metrics_port: int,
    deltas: Deltas,
) -> None:
    load = {"duration": args.duration, "connections": args.connections, "client": args.client}
    closed = {**load, "concurrency": args.concurrency}
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    # Warm both (the mix with its writes on), then alternate so drift hits both alike.
    loadgen(baseline_target, ops, **{**closed, "duration": 2}, baseline=True)
    deltas.running.set()
    cursor = 0

    def mix(**kw: Any) -> Run:
        # Each run of the mix starts where the last one stopped: bodies are not sent again
        # (until the file wraps), so the read cache meets them new.
        nonlocal cursor
        run = loadgen(target, ops, **kw, start=cursor)
        cursor = run.next
        return run

    mix(**{**closed, "duration": 2})
    bases, ours, ratios = [], [], []
    hits = misses = 0.0
    for round_number in range(1, args.rounds + 1):
        deltas.running.clear()
        base = loadgen(baseline_target, ops, **closed, baseline=True, seed=round_number)
        deltas.running.set()
        before = metrics(metrics_url)
        run = mix(**closed, seed=round_number)
        after = metrics(metrics_url)
        hits += after["omnistock_read_cache_hits"] - before["omnistock_read_cache_hits"]
        misses += after["omnistock_read_cache_misses"] - before["omnistock_read_cache_misses"]
        bases.append(base)
        ours.append(run)
        ratios.append(run.calls_per_s / base.calls_per_s)
        print(
            f"  round {round_number}: baseline {base.calls_per_s:,.0f} calls/s (generator CPU"
            f" {base.cpu:.0%}); mix {run.calls_per_s:,.0f} calls/s = {run.ops_per_s:,.0f} ops/s"
            f" ({ratios[-1]:.2f} x), generator CPU {run.cpu:.0%}, codes {run.codes}"
        )
    deltas.running.clear()
    # The same empty handler under h2load (native, one body): the generator must reach it.
    h2 = (
        bench.h2load(baseline_url, b"", duration=args.duration, clients=4, streams=16).qps
        if shutil.which("h2load")
        else float("nan")
    )
    base_peak = statistics.median(b.calls_per_s for b in bases)
    base_ops = statistics.median(b.ops_per_s for b in bases)
    our_ops = statistics.median(r.ops_per_s for r in ours)
    # Open loop: the baseline at half its own peak; the mix at half its own peak (with the
    # write-to-read probe running) and at half the baseline's (in operations/s).
    paced_base = loadgen(baseline_target, ops, **load, rate=base_ops / 2, baseline=True, seed=50)
    deltas.running.set()
    seen: list[tuple[float, float]] = []
    probe = threading.Thread(target=lambda: seen.extend(visibility(target, args, args.probes)))
    probe.start()
    paced_own = mix(**load, rate=our_ops / 2, seed=51)
    probe.join()
    paced_half_base = mix(**load, rate=base_ops / 2, seed=52)
    deltas.running.clear()
    if deltas.error is not None:
        sys.exit(f"the background StreamDeltas failed: {deltas.error}")
    ratio = statistics.median(ratios)
    print()
    print(f"mixed, {args.db}: {args.stores:,} stores x {args.skus:,} skus, Zipf s={args.zipf};"
          f" median of {args.rounds} rounds of {args.duration:g} s; {args.concurrency} operations in"
          f" flight over {args.connections} connections; StreamDeltas at {args.delta_rate:,.0f}"
          f" records/s during the mix ({deltas.acked:,} records acked)")  # fmt: skip
    print("| measure | peak calls/s | peak ops/s | ratio (calls/s) | generator CPU at peak |")
    print("|---|---|---|---|---|")
    print(f"| baseline (empty handler, {args.client}) | {base_peak:,.0f} | {base_ops:,.0f} | 1.00 x"
          f" | {statistics.median(b.cpu for b in bases):.0%} |")  # fmt: skip
    print(f"| baseline (empty handler, h2load) | {h2:,.0f} | | {h2 / base_peak:.2f} x | |")
    print(f"| mix | {statistics.median(r.calls_per_s for r in ours):,.0f} | {our_ops:,.0f}"
          f" | **{ratio:.2f} x** (rounds {', '.join(f'{x:.2f}' for x in ratios)})"
          f" | {statistics.median(r.cpu for r in ours):.0%} |")  # fmt: skip
    print()
    print("| open loop (Poisson) | offered ops/s | p50 | p90 | p99 | generator's latest send |")
    print("|---|---|---|---|---|---|")
    for name, p, rate in (
        ("baseline at half its peak", paced_base, base_ops / 2),
        ("mix at half its own peak", paced_own, our_ops / 2),
        ("mix at half the baseline's peak", paced_half_base, base_ops / 2),
    ):
        print(f"| {name} | {rate:,.0f} | {p.p50_ms:.2f} ms | {p.p90_ms:.2f} ms | {p.p99_ms:.2f} ms"
              f" | {p.max_send_lag_ms:.1f} ms late |")  # fmt: skip
    print()
    print("per kind at half the mix's own peak: " + "; ".join(
        f"{k} p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms" for k, v in paced_own.kinds.items()
    ))  # fmt: skip
    lookups = hits + misses
    print(f"read cache during the mixed peaks: {hits:,.0f} hits, {misses:,.0f} misses,"
          f" hit ratio {hits / lookups if lookups else 0:.1%}")  # fmt: skip
    acked_p50, acked_p99 = quantiles([a for a, _ in seen])
    seen_p50, seen_p99 = quantiles([s for _, s in seen])
    print(f"write to read ({len(seen)} samples, at half the mix's peak): ApplyStockUpdates acked"
          f" p50 {acked_p50:.1f} ms p99 {acked_p99:.1f} ms; shown by GetAvailability on another"
          f" connection p50 {seen_p50:.1f} ms, p99 {seen_p99:.1f} ms (max {max(s for _, s in seen):.1f} ms)")  # fmt: skip
    print()
    print(f"bar: mix >= 0.50 x the baseline: {ratio:.2f} x -> {'PASS' if ratio >= 0.5 else 'FAIL'}")
    print(f"bar: p99 <= 10 ms at half the mix's own peak: {paced_own.p99_ms:.2f} ms ->"
          f" {'PASS' if paced_own.p99_ms <= 10 else 'FAIL'}")  # fmt: skip
    # The generator is not the limit when the empty handler gives it what it gives h2load
    # (a native client), or when the calls it sent used less of its core than it has.
    capacity = statistics.median(b.calls_per_s / b.cpu for b in bases)
    native = h2 if h2 == h2 else 0.0  # NaN: no h2load
    verdict = base_peak >= 0.95 * native or capacity >= 1.05 * max(base_peak, native)
    print(f"generator ({args.client}): the empty handler's peak under it {base_peak:,.0f} calls/s,"
          f" under h2load {native:,.0f}; it used {statistics.median(b.cpu for b in bases):.0%} of its"
          f" core there ({1e6 / capacity:.0f} us of CPU a call, {capacity:,.0f} calls/s on a whole"
          f" core) -> {'it outruns the baseline' if verdict else 'NOT SHOWN to outrun the baseline'}")  # fmt: skip
