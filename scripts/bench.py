"""omnistock benchmark: our server against a baseline, measured in one run, as ratios.

    .venv/bin/python scripts/bench.py availability [--stores 1000 --skus 10000] [--duration 10] [--read-cache-size N]

    .venv/bin/python scripts/bench.py observability [--duration 10] [--rounds 3]

    .venv/bin/python scripts/bench.py mixed --db sqlite|postgresql   (scripts/bench_mixed.py)

observability
    GetAvailability on three servers of one database: observability off, metrics on
    (access log off), metrics and access log on; measured in alternation. Reports the
    cost of metrics (against off) and of the access log (against metrics on).

availability
    Baseline: an empty grpc.aio unary handler (no deserialisation, empty reply),
    in its own process. Then `omnistock serve` on a SQLite file with STORES x SKUS
    stock records: GetAvailability (one sku at one store) and BatchGetAvailability
    (100 pairs). Load comes from h2load (nghttp2-client), a native HTTP/2 client
    sending real gRPC frames, so the load generator is not the bottleneck. The
    server under test is pinned to CPU 0 and h2load to CPU 1.

    Peak QPS (closed loop) alternates baseline and ours for several rounds, so
    drift in this shared machine's speed hits both alike; the ratio is the median
    of the rounds. Then p50/p90/p99 latency under Poisson arrivals at half the
    baseline's peak QPS, for the baseline too. Prints the ratios against the bar.

h2load sends one request body repeatedly; each call still runs the whole path
(validation, SQL query, rules, serialisation): the server caches no answers.

    .venv/bin/python scripts/bench.py channel [--stores 1000 --skus 10000] [--duration 10]

channel
    GetAvailability of (sku, web channel) over many distinct skus against the empty
    handler, and the cross-process visibility of a feed write: scripts/bench_channel.py.

    .venv/bin/python scripts/bench.py reserve [--stores 50 --skus 2000] [--duration 10] [--sqlite-only]

reserve
    CreateReservation throughput on SQLite and on PostgreSQL, each in a fresh database
    loaded through the server (STORES x SKUS records, 1,000,000 on hand each). Load: a
    grpc.aio client on CPU 1 keeping --concurrency CHECKOUT holds of 1 to 3 random lines
    in flight, each with a fresh idempotency key. Baseline: the server's own statements
    (the idempotency key's lookup, the location's lapsed holds, a conditional UPDATE per
    line, the reservations row, its lines) on the driver, one
    transaction per reservation, no gRPC: sqlite3 on one connection; psycopg on
    --base-connections threads. Alternated for --rounds rounds; medians and ratios, p50/p99
    under the full load and at --light-concurrency calls in flight, and a check that the
    stored reservations and stock.reserved add up to the successes.

    .venv/bin/python scripts/bench.py watch [--streams 1000 3000 10000] [--clients 4] [--db sqlite postgresql]

watch
    WatchAvailability fan-out against an empty streaming handler, in one run, from several
    load processes: scripts/bench_watch.py says how (its load side: bench_watch_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_limits

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench-data"
SERVER_CPU = 0
LOAD_CPU = 1


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def grpc_frame(message: bytes) -> bytes:
    """The gRPC length-prefixed message: flag byte 0 (uncompressed), 4-byte length, bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


def start_pinned(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
    )
    return process


# Set by start_server(secure=True): the key every benchmark call sends, as h2load headers.
API_KEY: str | None = None
AUTH_HEADERS: list[str] = []


def start_server(
    database_url: str, *extra: str, secure: bool = False, code: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`omnistock serve` on a free port, pinned to the server's core; returns it and its target.

    ``secure``: the server checks API keys, as in production, and every call of the
    benchmark sends one (an admin key without a rate limit, made here). Otherwise the
    server runs --insecure. ``code``: another checkout whose server to run (--before),
    on the same data and key."""
    global API_KEY, AUTH_HEADERS
    omnistock = str(Path(sys.executable).parent / "omnistock")
    env = {**os.environ, "OMNISTOCK_LOG_LEVEL": "WARNING"}
    if code is not None:
        env["PYTHONPATH"] = f"{code / 'server'}:{code / 'client'}"
        extra = ("--insecure", *extra) if API_KEY is None else extra
        port = free_port()
        process = start_pinned(
            [omnistock, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", database_url, *extra],
            env=env,
        )  # fmt: skip
        wait_port(port)
        return process, f"127.0.0.1:{port}"
    API_KEY, AUTH_HEADERS = None, []
    if secure:
        made = subprocess.run(
            [omnistock, "keys", "--database-url", database_url, "create", "bench", "--role", "admin",
             "--exposure", "exact", "--rate", "1e9", "--burst", "1000000000"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        API_KEY = made.stdout.strip().splitlines()[-1]
        AUTH_HEADERS = ["-H", f"authorization: Bearer {API_KEY}"]
    else:
        extra = ("--insecure", *extra)
    port = free_port()
    process = start_pinned(
        [omnistock, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", database_url, *extra],
        env=env,
    )  # fmt: skip
    wait_port(port)
    return process, f"127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class LoadResult:
    qps: float
    succeeded: int
    failed: int
    bytes_per_response: float
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0


def h2load(
    url: str,
    body: bytes,
    *,
    duration: float,
    clients: int,
    streams: int,
    warmup: float = 1.0,
) -> LoadResult:
    """Closed-loop peak load from h2load against a gRPC method."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "body.bin"
        data.write_bytes(grpc_frame(body))
        log = Path(tmp) / "requests.log"
        args = [
            "taskset", "-c", str(LOAD_CPU), "h2load",
            "-c", str(clients), "-m", str(streams), "-t", "1",
            "-D", str(int(duration)), f"--warm-up-time={int(warmup)}",
            "-d", str(data),
            "-H", "content-type: application/grpc", "-H", "te: trailers", *AUTH_HEADERS,
            f"--log-file={log}",
        ]  # fmt: skip
        args.append(url)
        output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        latencies = []
        for line in log.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                latencies.append(int(parts[2]) / 1000.0)
    qps = succeeded = failed = 0.0
    data_bytes = 0.0
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("finished in"):
            qps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            fields = dict(
                (part.strip().split(" ", 1)[1], int(part.strip().split(" ", 1)[0]))
                for part in line.split(":", 1)[1].split(",")
            )
            succeeded, failed = (
                fields.get("succeeded", 0),
                fields.get("failed", 0) + fields.get("errored", 0),
            )
        elif line.startswith("traffic:"):
            # "traffic: 1.23MB (1234567) total, 12KB (123) headers (space savings ...), 1.1MB (111111) data"
            data_part = line.split(",")[-1]
            data_bytes = float(data_part.split("(")[1].split(")")[0])
    result = LoadResult(qps, int(succeeded), int(failed), data_bytes / max(1, succeeded))
    if latencies:
        latencies.sort()
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        result.p50_ms, result.p90_ms, result.p99_ms = q[49], q[89], q[98]
    return result


def paced_latency(
    url: str, body: bytes, *, rate: float, duration: float, generators: int = 4
) -> LoadResult:
    """Latency at a fixed offered load: Poisson arrivals at ``rate`` per second.

    h2load's --rps mode sends in bursts (even an empty handler shows a p99 of
    15-25 ms under it), so instead each of ``generators`` h2load processes, on its
    own connection, replays its own timing script of exponential gaps at
    rate / generators; independent Poisson streams add up to one at ``rate``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "body.bin"
        data.write_bytes(grpc_frame(body))
        processes = []
        logs = []
        for g in range(generators):
            rng = random.Random(1000 + g)
            script = Path(tmp) / f"script-{g}.tsv"
            offset_ms = 0.0
            lines = []
            for _ in range(int(rate / generators * duration)):
                offset_ms += rng.expovariate(rate / generators) * 1000
                lines.append(f"{offset_ms:.3f}\t{url}\n")
            script.write_text("".join(lines))
            log = Path(tmp) / f"requests-{g}.log"
            logs.append(log)
            command = [
                "taskset", "-c", str(LOAD_CPU), "h2load", "-c", "1", "-m", "100", "-t", "1",
                f"--timing-script-file={script}", "-d", str(data),
                "-H", "content-type: application/grpc", "-H", "te: trailers", *AUTH_HEADERS,
                f"--log-file={log}",
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for process in processes:
            process.wait()
        latencies = sorted(
            int(parts[2]) / 1000.0
            for log in logs
            for parts in (line.split("\t") for line in log.read_text().splitlines())
            if len(parts) >= 3 and parts[1] == "200"
        )
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadResult(rate, len(latencies), 0, 0.0, q[49], q[89], q[98])


# ---------------------------------------------------------------- baseline


async def serve_empty(listen: str) -> None:
    """The baseline: a grpc.aio server whose one unary method does nothing."""
    import grpc
    from grpc import aio

    async def empty(request: bytes, context: aio.ServicerContext) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(
        "bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(empty)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(listen)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await server.stop(1)


def start_baseline() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = start_pinned([sys.executable, __file__, "serve-empty", f"127.0.0.1:{port}"])
    wait_port(port)
    return process, f"http://127.0.0.1:{port}/bench.Empty/Call"


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------- data sets


@contextmanager
def building(path: Path) -> Iterator[Any]:
    """A migrated SQLite engine on PATH.partial, moved to PATH only once it is complete."""
    from omnistock.server.store.database import create_database_engine, migrate

    tmp = path.with_suffix(".partial")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    engine = create_database_engine(f"sqlite:///{tmp}")
    migrate(engine)
    started = time.monotonic()
    yield engine
    engine.dispose()
    os.replace(tmp, path)
    print(f"  built {path.name} in {time.monotonic() - started:.0f}s")


def load_snapshots(
    engine: Any, snapshots: Iterator[tuple[str, list[tuple[str, int, None]]]], now: datetime
) -> int:
    """Load (location_id, records) snapshots through the feed path; returns records written."""
    from omnistock.server.domain.timeutil import to_micros
    from omnistock.server.store.feeds import FeedWriter

    writer = FeedWriter(engine)
    total = 0
    for location_id, records in snapshots:
        snapshot = writer.begin_snapshot(
            location_id, to_micros(now - timedelta(minutes=5)), now_us=to_micros(now)
        )
        snapshot.add(records)
        total += snapshot.commit().applied
    return total


def build_availability_db(path: Path, stores: int, skus: int) -> None:
    """STORES stores around the Netherlands, each with every sku."""
    from omnistock.server.domain.locations import Capabilities, Location, LocationKind
    from omnistock.server.store.locations import LocationRepository

    now = datetime.now(UTC)
    rng = random.Random(1)
    locations = [
        Location(
            id=f"S{i:05d}",
            kind=LocationKind.STORE,
            name=f"Store {i}",
            time_zone="Europe/Amsterdam",
            latitude=rng.uniform(50.8, 53.4),
            longitude=rng.uniform(3.6, 7.1),
            country="NL",
            capabilities=Capabilities(pickup=True, ship_to_store=True),
            pickup_lead_time_minutes=30,
        )
        for i in range(stores)
    ]
    with building(path) as engine:
        LocationRepository(engine).upsert_many(locations, now=now)
        snapshots = (
            (loc.id, [(f"SKU-{k:06d}", rng.randint(-1, 40), None) for k in range(skus)])
            for loc in locations
        )
        print(f"  {load_snapshots(engine, snapshots, now):,} stock records")


def prepare(name: str, build: Callable[[Path], None]) -> Path:
    """Check for h2load, print the machine, and build the data set once."""
    if shutil.which("h2load") is None:
        sys.exit(
            "h2load not found: install Debian's nghttp2-client (apt-get install nghttp2-client)"
        )
    DATA_DIR.mkdir(exist_ok=True)
    db = DATA_DIR / f"{name}.db"
    print(f"machine: {machine()}")
    if not db.exists():
        print(f"building the data set {name} ...")
        build(db)
    return db


# ---------------------------------------------------------------- availability


def availability(args: argparse.Namespace) -> None:
    from omnistock.client import Client, Exposure
    from omnistock.v1 import availability_pb2

    db = prepare(
        f"availability-{args.stores}x{args.skus}",
        lambda path: build_availability_db(path, args.stores, args.skus),
    )

    rng = random.Random(2)
    sku = f"SKU-{rng.randrange(args.skus):06d}"
    store = f"S{rng.randrange(args.stores):05d}"
    single = availability_pb2.GetAvailabilityRequest(sku=sku, location_ids=[store], exposure=1)
    batch = availability_pb2.BatchGetAvailabilityRequest(
        items=[
            availability_pb2.SkuLocation(
                sku=f"SKU-{rng.randrange(args.skus):06d}",
                location_id=f"S{rng.randrange(args.stores):05d}",
            )
            for _ in range(100)
        ],
        exposure=1,
    )

    process, target = start_server(
        f"sqlite:///{db}",
        *([] if args.read_cache_size is None else ["--read-cache-size", str(args.read_cache_size)]),
        secure=True,
    )
    try:
        with Client(target, api_key=API_KEY) as client:  # real answers, not errors
            single_size = len(
                availability_pb2.GetAvailabilityResponse(
                    availabilities=client.get_availability(sku, [store], exposure=Exposure.EXACT)
                ).SerializeToString()
            )
            batch_size = len(
                availability_pb2.BatchGetAvailabilityResponse(
                    availabilities=client.batch_get_availability(
                        [(i.sku, i.location_id) for i in batch.items], exposure=Exposure.EXACT
                    )
                ).SerializeToString()
            )
        service = "/omnistock.v1.AvailabilityService"
        methods = {
            "GetAvailability": Measured(
                f"{service}/GetAvailability", single.SerializeToString(), single_size
            ),
            "BatchGetAvailability (100 pairs)": Measured(
                f"{service}/BatchGetAvailability",
                batch.SerializeToString(),
                batch_size,
                paced_at_half_baseline=False,
            ),
        }
        before = with_before(methods, args, f"sqlite:///{db}")
        try:
            peaks, ratios, paced = compare_with_baseline(target, methods, args)
        finally:
            if before is not None:
                stop(before)
    finally:
        stop(process)
    report(peaks, ratios, paced, args.rounds)
    bars(ratios, paced, "GetAvailability", ratio_bar=0.7, p99_bar=10)


def with_before(
    methods: dict[str, Measured], args: argparse.Namespace, database_url: str
) -> subprocess.Popen[bytes] | None:
    """With --before DIR: the server of the checkout in DIR, on the same data, and each
    method again against it ("... (before)"), measured in the same alternating rounds."""
    if not args.before:
        return None
    process, target = start_server(database_url, code=Path(args.before).resolve())
    for name, m in list(methods.items()):
        methods[f"{name} (before)"] = Measured(
            m.path, m.body, m.response_size, m.paced_at_half_baseline, target=target
        )
    return process


def observability(args: argparse.Namespace) -> None:
    """GetAvailability's peak with observability off, with metrics on (access log off),
    and with metrics and the access log on: three servers on one database, measured in
    alternation, round by round, so drift in the machine hits each alike. The figures:
    metrics' cost (on / off) and the access log's own (both / metrics)."""
    from omnistock.client import Client, Exposure
    from omnistock.v1 import availability_pb2

    db = prepare(
        f"availability-{args.stores}x{args.skus}",
        lambda path: build_availability_db(path, args.stores, args.skus),
    )
    rng = random.Random(2)
    sku = f"SKU-{rng.randrange(args.skus):06d}"
    store = f"S{rng.randrange(args.stores):05d}"
    body = availability_pb2.GetAvailabilityRequest(
        sku=sku, location_ids=[store], exposure=1
    ).SerializeToString()
    variants = {
        "off": [],
        "metrics": ["--metrics-listen", f"127.0.0.1:{free_port()}"],
        "metrics + access log": [
            "--metrics-listen", f"127.0.0.1:{free_port()}", "--access-log", "--log-level", "INFO",
        ],
    }  # fmt: skip
    servers = {
        name: start_server(f"sqlite:///{db}", *extra, secure=True)
        for name, extra in variants.items()
    }
    load = {"duration": args.duration, "clients": args.clients, "streams": args.streams}
    peaks: dict[str, list[float]] = {name: [] for name in variants}
    try:
        path = "/omnistock.v1.AvailabilityService/GetAvailability"
        for _, target in servers.values():
            with Client(target, api_key=API_KEY) as client:  # real answers, not errors
                assert client.get_availability(sku, [store], exposure=Exposure.EXACT)
            h2load(f"http://{target}{path}", body, **{**load, "duration": 2})
        for round_number in range(1, args.rounds + 1):
            line = []
            for name, (_, target) in servers.items():
                qps = h2load(f"http://{target}{path}", body, **load).qps
                peaks[name].append(qps)
                line.append(f"{name} {qps:,.0f} QPS")
            print(f"  round {round_number}: " + "; ".join(line))
    finally:
        for process, _ in servers.values():
            stop(process)
    off, metrics, logged = (median(peaks[name]) for name in variants)
    print()
    print(f"GetAvailability peak, median of {args.rounds} rounds")
    print("| server | peak QPS | cost |")
    print("|---|---|---|")
    print(f"| observability off | {off:,.0f} | |")
    print(f"| metrics on, access log off | {metrics:,.0f} | {1 - metrics / off:.1%} of off |")
    print(
        f"| metrics and access log on | {logged:,.0f} | access log: {1 - logged / metrics:.1%}"
        " of metrics on |"
    )


@dataclass
class Measured:
    path: str
    body: bytes
    response_size: int
    # The latency run offers half the baseline's peak; a method that cannot take it
    # (a 100-pair batch) is offered half its own peak instead.
    paced_at_half_baseline: bool = True
    # The server to send it to, when not the one under test (--before).
    target: str = ""


def compare_with_baseline(
    target: str, methods: dict[str, Measured], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, LoadResult]]:
    """Alternate the empty-handler baseline and each method for args.rounds rounds, then
    measure latency under Poisson arrivals at half the baseline's median peak."""
    baseline_process, baseline_url = start_baseline()
    peaks: dict[str, list[float]] = {"baseline": []}
    ratios: dict[str, list[float]] = {}
    paced: dict[str, LoadResult] = {}
    load = {"duration": args.duration, "clients": args.clients, "streams": args.streams}
    try:
        # Warm both servers, then alternate, so that drift in the machine's speed hits
        # both alike; each round gives one ratio.
        h2load(baseline_url, b"", **{**load, "duration": 2})
        for m in methods.values():
            h2load(f"http://{m.target or target}{m.path}", m.body, **{**load, "duration": 2})
        for round_number in range(1, args.rounds + 1):
            base = h2load(baseline_url, b"", **load).qps
            peaks["baseline"].append(base)
            line = [f"round {round_number}: baseline {base:,.0f} QPS"]
            for name, m in methods.items():
                peak = h2load(f"http://{m.target or target}{m.path}", m.body, **load)
                # An error status carries no message; each answer carries the whole one.
                if peak.bytes_per_response < 0.9 * (m.response_size + 5):
                    sys.exit(
                        f"{name}: {peak.bytes_per_response:.0f} bytes per response: errors, not answers"
                    )
                peaks.setdefault(name, []).append(peak.qps)
                ratios.setdefault(name, []).append(peak.qps / base)
                line.append(f"{name} {peak.qps:,.0f} QPS ({peak.qps / base:.2f} x)")
            print("  " + "; ".join(line))
        half = median(peaks["baseline"]) / 2
        paced["baseline"] = paced_latency(baseline_url, b"", rate=half, duration=args.duration)
        for name, m in methods.items():
            rate = half if m.paced_at_half_baseline else median(peaks[name]) / 2
            paced[name] = paced_latency(
                f"http://{m.target or target}{m.path}", m.body, rate=rate, duration=args.duration
            )
    finally:
        stop(baseline_process)
    return peaks, ratios, paced


def report(
    peaks: dict[str, list[float]],
    ratios: dict[str, list[float]],
    paced: dict[str, LoadResult],
    rounds: int,
) -> None:
    print()
    print(f"peak: median of {rounds} rounds. Latency: Poisson arrivals at the offered load.")
    print("| measure | peak QPS | ratio to baseline | offered load | p50 | p90 | p99 |")
    print("|---|---|---|---|---|---|---|")
    for name in peaks:
        ratio_text = "1.00 x" if name == "baseline" else f"{median(ratios[name]):.2f} x"
        p = paced[name]
        print(
            f"| {name} | {median(peaks[name]):,.0f} | {ratio_text} | {p.qps:,.0f} QPS "
            f"| {p.p50_ms:.2f} ms | {p.p90_ms:.2f} ms | {p.p99_ms:.2f} ms |"
        )


def bars(
    ratios: dict[str, list[float]],
    paced: dict[str, LoadResult],
    name: str,
    *,
    ratio_bar: float,
    p99_bar: float,
) -> None:
    ratio = median(ratios[name])
    p99 = paced[name].p99_ms
    print()
    print(
        f"bar: {name} >= {ratio_bar:.2f} x baseline QPS: {ratio:.2f} x -> {'PASS' if ratio >= ratio_bar else 'FAIL'}"
    )
    print(
        f"bar: p99 <= {p99_bar:.0f} ms at half the baseline's peak: {p99:.2f} ms -> {'PASS' if p99 <= p99_bar else 'FAIL'}"
    )


# ---------------------------------------------------------------- search

DAM = (52.3731, 4.8926)


def search_cart(skus: int) -> dict[str, int]:
    """Three skus from the long tail's head, body and tail: 50, 400 and 2,000 of 100,000."""
    return {f"SKU-{int(skus * share):07d}": 1 for share in (0.0005, 0.004, 0.02)}


def build_search_db(path: Path, stores: int, skus: int, per_store: int) -> None:
    """STORES stores (a tenth in Amsterdam, the rest across the Netherlands), 2 warehouses,
    each store carrying PER_STORE skus drawn with a long tail (a few skus almost everywhere)."""
    import math

    from omnistock.server.domain.locations import Capabilities, Location, LocationKind, WeeklyHours
    from omnistock.server.store.locations import LocationRepository

    now = datetime.now(UTC)
    rng = random.Random(4)
    hours = tuple(
        WeeklyHours(d, datetime.min.time().replace(hour=8), datetime.min.time().replace(hour=22))
        for d in range(1, 8)
    )
    locations = []
    for i in range(stores):
        if i < stores // 10:
            r, a = 12 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            lat, lon = DAM[0] + r * math.cos(a) / 111.2, DAM[1] + r * math.sin(a) / (111.2 * 0.61)
        else:
            lat, lon = rng.uniform(50.8, 53.4), rng.uniform(3.6, 7.1)
        locations.append(
            Location(id=f"S{i:05d}", kind=LocationKind.STORE, name=f"Store {i}", time_zone="Europe/Amsterdam",
                     latitude=lat, longitude=lon, country="NL", weekly_hours=hours,
                     capabilities=Capabilities(pickup=True, ship_to_store=True), pickup_lead_time_minutes=30)
        )  # fmt: skip
    locations += [
        Location(id=f"WH-{i}", kind=LocationKind.WAREHOUSE, name=f"Warehouse {i}", time_zone="Europe/Amsterdam",
                 latitude=51.6 + i, longitude=5.0, country="NL", capabilities=Capabilities(ship_from=True),
                 shipping_days=1 + i)
        for i in range(2)
    ]  # fmt: skip

    def snapshots() -> Iterator[tuple[str, list[tuple[str, int, None]]]]:
        for location in locations:
            if location.kind is LocationKind.WAREHOUSE:
                chosen = {f"SKU-{i:07d}" for i in range(skus)}
            else:
                chosen = set()
                while len(chosen) < per_store:
                    chosen.add(f"SKU-{int(skus * rng.random() ** 3):07d}")
            yield location.id, [(sku, rng.randint(0, 12), None) for sku in sorted(chosen)]

    with building(path) as engine:
        LocationRepository(engine).upsert_many(locations, now=now)
        print(f"  {load_snapshots(engine, snapshots(), now):,} stock records")


def search(args: argparse.Namespace) -> None:
    from omnistock.client import Client, cart, origin
    from omnistock.v1 import availability_pb2

    db = prepare(
        f"search-{args.stores}x{args.skus}x{args.per_store}",
        lambda path: build_search_db(path, args.stores, args.skus, args.per_store),
    )
    request = availability_pb2.SearchNearbyRequest(
        lines=cart(search_cart(args.skus)),
        origin=origin(latitude=DAM[0], longitude=DAM[1]),
        radius_km=25,
    )
    process, target = start_server(f"sqlite:///{db}", secure=True)
    try:
        with Client(target, api_key=API_KEY) as client:
            answer = client.search_nearby(request.lines, request.origin, radius_km=25)
            print(f"  the search finds {len(answer.locations)} stores; nearest {answer.locations[0].distance_km:.1f} km"
                  f" away, farthest listed {answer.locations[-1].distance_km:.1f} km")  # fmt: skip
            size = len(answer.SerializeToString())
        methods = {
            "SearchNearby (3-line cart, 25 km, Amsterdam)": Measured(
                "/omnistock.v1.AvailabilityService/SearchNearby", request.SerializeToString(), size
            )
        }
        before = with_before(methods, args, f"sqlite:///{db}")
        try:
            peaks, ratios, paced = compare_with_baseline(target, methods, args)
        finally:
            if before is not None:
                stop(before)
        # Below saturation: the latency a shopper sees while the server has headroom.
        name, measured = next(iter(methods.items()))
        share = 0.7
        own = paced_latency(
            f"http://{target}{measured.path}", measured.body,
            rate=median(peaks[name]) * share, duration=args.duration,
        )  # fmt: skip
    finally:
        stop(process)
    report(peaks, ratios, paced, args.rounds)
    print(
        f"at {share:.0%} of its own peak ({own.qps:,.0f} QPS): p50 {own.p50_ms:.2f} ms, "
        f"p90 {own.p90_ms:.2f} ms, p99 {own.p99_ms:.2f} ms"
    )
    bars(ratios, paced, name, ratio_bar=0.35, p99_bar=15)


# ---------------------------------------------------------------- ingest


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def snapshot_requests(
    location_id: str, count: int, as_of: datetime, batch: int = 5_000
) -> list[Any]:
    from omnistock.v1 import feed_pb2

    header = feed_pb2.SnapshotHeader(location_id=location_id)
    header.as_of.FromDatetime(as_of)
    requests = []
    for start in range(0, count, batch):
        records = [
            feed_pb2.SnapshotRecord(sku=f"SKU-{i:07d}", on_hand=i % 50)
            for i in range(start, min(count, start + batch))
        ]
        requests.append(
            feed_pb2.ImportSnapshotRequest(header=header if start == 0 else None, records=records)
        )
    requests[-1].complete = True  # the server applies only a stream that says it is whole
    return requests


# What a snapshot writes for each record: the stock row with on_hand's ordering key.
BASELINE_COLUMNS = (
    "sku, location_id, on_hand, reserved, safety_stock, source_updated_at_us, source_sequence,"
    " received_at_us, on_hand_key"
)


def baseline_rows(count: int, now_us: int) -> list[tuple[object, ...]]:
    from omnistock.server.domain.feed_order import pack_key

    return [
        (f"SKU-{i:07d}", "BENCH-1", i % 50, 0, None, now_us, None, now_us,
         pack_key(now_us, -1, 2 * (i % 50) + 1, -1))
        for i in range(count)
    ]  # fmt: skip


def raw_sqlite_insert(path: Path, count: int, now_us: int) -> float:
    """The baseline: sqlite3.executemany of the same rows into the same table, one transaction."""
    import sqlite3

    rows = baseline_rows(count, now_us)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(
        f"INSERT INTO stock ({BASELINE_COLUMNS}) VALUES ({', '.join(['?'] * 9)})", rows
    )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def raw_postgres_copy(url: str, count: int, now_us: int) -> float:
    """The baseline: COPY of the same rows into the same table, one transaction."""
    import psycopg

    rows = baseline_rows(count, now_us)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY stock ({BASELINE_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return count / (time.perf_counter() - started)


def fresh_database(kind: str, tmp: Path) -> str:
    """An empty, migrated database with the one benchmark location."""
    from omnistock.server.domain.locations import Location, LocationKind
    from omnistock.server.store.database import create_database_engine, migrate
    from omnistock.server.store.locations import LocationRepository
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        path = tmp / f"ingest-{time.monotonic_ns()}.db"
        url = f"sqlite:///{path}"
    else:
        url = os.environ.get(
            "OMNISTOCK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        admin.dispose()
    engine = create_database_engine(url)
    migrate(engine)
    LocationRepository(engine).upsert_many(
        [
            Location(
                id="BENCH-1",
                kind=LocationKind.STORE,
                name="Bench",
                time_zone="UTC",
                latitude=52,
                longitude=5,
            )
        ],
        now=datetime.now(UTC),
    )
    engine.dispose()
    return url


def served_snapshot(url: str, requests: list[Any], count: int) -> tuple[float, float]:
    """Rows per second of ImportSnapshot through a real server, and the server's peak RSS."""
    import grpc
    from omnistock.v1 import feed_pb2_grpc

    process, target = start_server(url)
    try:
        with grpc.insecure_channel(target) as channel:
            stub = feed_pb2_grpc.FeedServiceStub(channel)
            started = time.perf_counter()
            response = stub.ImportSnapshot(iter(requests))
            elapsed = time.perf_counter() - started
        if response.applied_count != count:
            sys.exit(f"snapshot applied {response.applied_count}, expected {count}")
        return count / elapsed, peak_rss_mb(process.pid)
    finally:
        stop(process)


def served_deltas(url: str, records: int, batch: int = 1_000) -> float:
    import grpc
    from omnistock.v1 import feed_pb2, feed_pb2_grpc

    now = datetime.now(UTC)
    requests = []
    for start in range(0, records, batch):
        items = []
        for i in range(start, min(records, start + batch)):
            record = feed_pb2.DeltaRecord(
                location_id="BENCH-1", sku=f"SKU-{i % 100_000:07d}", adjustment=-1
            )
            record.source_updated_at.FromDatetime(now + timedelta(microseconds=i))
            items.append(record)
        requests.append(feed_pb2.StreamDeltasRequest(batch_id=str(start), records=items))
    process, target = start_server(url)
    try:
        with grpc.insecure_channel(target) as channel:
            stub = feed_pb2_grpc.FeedServiceStub(channel)
            started = time.perf_counter()
            applied = sum(ack.applied_count for ack in stub.StreamDeltas(iter(requests)))
            elapsed = time.perf_counter() - started
        if applied != records:
            sys.exit(f"deltas applied {applied}, expected {records}")
        return records / elapsed
    finally:
        stop(process)


def delta_params(records: int, now: datetime) -> list[list[tuple[Any, ...]]]:
    """The parameters the server's relative upsert gets for served_deltas' records, in
    batches of 1,000 (one transaction each, as the server runs one per StreamDeltas batch)."""
    from omnistock.server.domain.feed_order import DeltaRow
    from omnistock.server.domain.timeutil import to_micros

    now_us = to_micros(now)
    batches = []
    for start in range(0, records, 1_000):
        batch = []
        for i in range(start, min(records, start + 1_000)):
            row = DeltaRow("BENCH-1", f"SKU-{i % 100_000:07d}", -1, True, now_us + i)
            batch.append((row.sku, row.location_id, row.quantity, 0, None, now_us,
                          row.source_updated_at_us, None, row.packed_key(), None))  # fmt: skip
        batches.append(batch)
    return batches


def raw_deltas(kind: str, url: str, records: int) -> float:
    """The baseline for StreamDeltas: the server's own upsert statement (store/stock_upsert.py)
    with the same parameters, sent by the bare driver in transactions of 1,000 records:
    sqlite3 executemany; psycopg executemany (pipeline mode), reading back each row's keys as
    the server does. Records per second."""
    from omnistock.server.store.stock_upsert import upsert

    now = datetime.now(UTC)
    batches = delta_params(records, now)
    if kind == "sqlite":
        import sqlite3

        sql = upsert("VALUES (" + ", ".join(["?"] * 10) + ")", relative=True, returning=False)
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        started = time.perf_counter()
        for batch in batches:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(sql, batch)
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
        connection.close()
        return records / elapsed
    import psycopg

    sql = upsert("VALUES (" + ", ".join(["%s"] * 10) + ")", relative=True, returning=True)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        cursor = connection.cursor()
        started = time.perf_counter()
        for batch in batches:
            cursor.executemany(sql, batch, returning=True)
            while True:
                cursor.fetchone()
                if not cursor.nextset():
                    break
            connection.commit()
        return records / (time.perf_counter() - started)


def ingest(args: argparse.Namespace) -> None:
    from omnistock.server.domain.timeutil import to_micros

    os.sched_setaffinity(0, {LOAD_CPU})
    print(f"machine: {machine()}")
    count = args.records
    as_of = datetime.now(UTC)
    requests = snapshot_requests("BENCH-1", count, as_of)
    small = snapshot_requests("BENCH-1", count // 5, as_of)
    results = []
    with tempfile.TemporaryDirectory(dir=DATA_DIR if DATA_DIR.exists() else None) as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in ("sqlite", "postgresql") if not args.sqlite_only else ("sqlite",):
            # Alternate baseline and ours, each into a fresh database, and take the
            # median of the rounds' ratios: drift in the machine hits both alike.
            bases, ours_runs, ratios = [], [], []
            rss = 0.0
            base_name = "sqlite3.executemany" if kind == "sqlite" else "COPY"
            for round_number in range(1, args.rounds + 1):
                url = fresh_database(kind, tmp)
                if kind == "sqlite":
                    base = raw_sqlite_insert(
                        Path(url.removeprefix("sqlite:///")), count, to_micros(as_of)
                    )
                else:
                    base = raw_postgres_copy(url, count, to_micros(as_of))
                ours, rss = served_snapshot(fresh_database(kind, tmp), requests, count)
                bases.append(base)
                ours_runs.append(ours)
                ratios.append(ours / base)
                print(
                    f"  {kind} round {round_number}: {base_name} {base:,.0f} rows/s; ImportSnapshot {ours:,.0f} rows/s ({ours / base:.2f} x)"
                )
            base, ours = median(bases), median(ours_runs)
            _, rss_small = served_snapshot(fresh_database(kind, tmp), small, count // 5)
            print(
                f"  peak RSS {rss_small:.0f} MB at {count // 5:,} records, {rss:.0f} MB at {count:,}"
            )
            # Deltas: the bare driver's upserts and StreamDeltas, alternated, fresh databases.
            delta_base_name = "sqlite3 executemany" if kind == "sqlite" else "psycopg pipeline"
            delta_runs = []
            for round_number in range(1, args.rounds + 1):
                base_deltas = raw_deltas(kind, fresh_database(kind, tmp), args.deltas)
                deltas = served_deltas(fresh_database(kind, tmp), args.deltas)
                delta_runs.append((base_deltas, deltas, deltas / base_deltas))
                print(
                    f"  {kind} deltas round {round_number}: {delta_base_name} {base_deltas:,.0f}"
                    f" records/s; StreamDeltas {deltas:,.0f} records/s ({deltas / base_deltas:.2f} x)"
                )
            delta_base, deltas, delta_ratio = (median([r[i] for r in delta_runs]) for i in range(3))
            results.append((kind, base_name, base, ours, median(ratios), rss_small, rss,
                            delta_base_name, delta_base, deltas, delta_ratio))  # fmt: skip
    print()
    print(
        f"| database | baseline | baseline rows/s | ImportSnapshot rows/s | ratio | peak RSS at {count // 5:,} / {count:,}"
        " | deltas baseline | baseline records/s | StreamDeltas records/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (kind, base_name, base, ours, ratio, rss_small, rss,
         delta_base_name, delta_base, deltas, delta_ratio) in results:  # fmt: skip
        print(
            f"| {kind} | {base_name} | {base:,.0f} | {ours:,.0f} | {ratio:.2f} x | {rss_small:.0f} MB / {rss:.0f} MB"
            f" | {delta_base_name} | {delta_base:,.0f} | {deltas:,.0f} | {delta_ratio:.2f} x |"
        )
    print()
    for kind, _, _, _, ratio, _, _, _, _, _, delta_ratio in results:
        bar = 0.8 if kind == "sqlite" else 0.7
        print(
            f"bar: {kind} ImportSnapshot >= {bar} x its baseline: {ratio:.2f} x -> {'PASS' if ratio >= bar else 'FAIL'}"
        )
        print(
            f"bar: {kind} StreamDeltas >= 0.5 x the bare driver: {delta_ratio:.2f} x -> {'PASS' if delta_ratio >= 0.5 else 'FAIL'}"
        )


# ---------------------------------------------------------------- reservations

# The server's hold statement (store/reservations.py), word for word, for the baseline.
HOLD_SQL = (
    "UPDATE stock SET reserved = reserved + {m} WHERE sku = {m} AND location_id = {m}"
    " AND source_updated_at_us >= {m} AND on_hand - reserved - COALESCE(safety_stock, {m}) >= {m}"
)
RESERVATION_SQL = (
    "INSERT INTO reservations (id, location_id, method, state, idempotency_key, fingerprint,"
    " customer_reference, created_at_us, expires_at_us, committed_at_us, ended_at_us, holds_stock,"
    " owner) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
)
# Before the holds, the server looks up the idempotency key and the location's lapsed holds.
KEY_SQL = "SELECT id FROM reservations WHERE owner = {m} AND idempotency_key = {m}"
LAPSED_SQL = (
    "SELECT id FROM reservations WHERE state = 'ACTIVE' AND expires_at_us <= {m}"
    " AND location_id = {m}"
)
LINE_SQL = (
    "INSERT INTO reservation_lines (reservation_id, sku, location_id, quantity, counted,"
    " expires_at_us) VALUES ({m}, {m}, {m}, {m}, TRUE, {m})"
)
RESERVE_ON_HAND = 1_000_000


def reserve_store_ids(stores: int) -> list[str]:
    return [f"RS-{i:04d}" for i in range(stores)]


def reserve_sku(k: int) -> str:
    return f"SKU-{k:07d}"


def reservation_spec(
    rng: random.Random, stores: list[str], skus: int
) -> tuple[str, list[tuple[str, int]]]:
    """One CHECKOUT hold: a random store, 1 to 3 distinct random skus, 1 to 3 units each."""
    lines = [
        (reserve_sku(k), rng.randint(1, 3)) for k in rng.sample(range(skus), rng.randint(1, 3))
    ]
    return rng.choice(stores), lines


@dataclass
class ReserveRun:
    rate: float  # successful reservations per second
    succeeded: int
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    load_cpu: float = 0.0  # the load process's CPU time / wall time (1.0 = its core is full)
    server_cpu: float = 0.0  # the same for the server


def percentiles(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return 0.0, 0.0
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


def load_reservation_data(target: str, stores: list[str], skus: int) -> None:
    """The stores and their stock (RESERVE_ON_HAND of every sku), through the server."""
    from omnistock.client import Capabilities, Client, LatLng, Location, LocationKind, WeeklyHours

    rng = random.Random(5)
    started = time.monotonic()
    with Client(target, timeout=120) as client:
        client.upsert_locations(
            Location(id=store, kind=LocationKind.STORE, name=f"Store {store}", address="Kalverstraat 1",
                     postal_code="1012 AB", country="NL",
                     position=LatLng(latitude=rng.uniform(50.8, 53.4), longitude=rng.uniform(3.6, 7.1)),
                     time_zone="Europe/Amsterdam",
                     weekly_hours=[WeeklyHours(day=d, opens="09:00", closes="18:00") for d in range(1, 7)],
                     capabilities=Capabilities(pickup=True, ship_to_store=True), pickup_lead_time_minutes=30,
                     active=True)
            for store in stores
        )  # fmt: skip
        as_of = datetime.now(UTC)
        applied = 0
        for store in stores:
            records = [(reserve_sku(k), RESERVE_ON_HAND) for k in range(skus)]
            applied += client.import_snapshot(store, as_of, records).applied_count
    if applied != len(stores) * skus:
        sys.exit(f"snapshots applied {applied:,} records, expected {len(stores) * skus:,}")
    print(
        f"  loaded {len(stores)} stores x {skus:,} skus through the server in {time.monotonic() - started:.1f}s"
    )


def check_sdk(target: str, store: str) -> None:
    """One hold and its release through the SDK, so the load below asks for real work."""
    from omnistock.client import Client, ReservationMethod, ReservationState

    with Client(target) as client:
        held = client.create_reservation(
            store, {reserve_sku(0): 2, reserve_sku(1): 1}, method=ReservationMethod.CHECKOUT
        )
        released = client.release_reservation(held.reservation_id)
    if held.state != ReservationState.ACTIVE or released.state != ReservationState.RELEASED:
        sys.exit(f"SDK check: hold {held.state}, release {released.state}")


async def reservation_load(
    target: str, stores: list[str], skus: int, *, duration: float, concurrency: int, seed: int
) -> ReserveRun:
    """Closed loop: CONCURRENCY CreateReservation calls in flight over 4 connections for
    DURATION seconds; each a CHECKOUT hold with a fresh idempotency key, as the SDK sends."""
    import uuid

    from grpc import aio
    from omnistock.v1 import reservation_pb2, reservation_pb2_grpc

    rng = random.Random(seed)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    channels = [aio.insecure_channel(target) for _ in range(4)]
    stubs = [reservation_pb2_grpc.ReservationServiceStub(channel) for channel in channels]
    checkout = reservation_pb2.RESERVATION_METHOD_CHECKOUT

    async def worker(stub: Any) -> None:
        while True:
            store, lines = reservation_spec(rng, stores, skus)
            request = reservation_pb2.CreateReservationRequest(
                location_id=store,
                lines=[reservation_pb2.ReservationLine(sku=s, quantity=q) for s, q in lines],
                method=checkout,
                idempotency_key=uuid.uuid4().hex,
            )
            sent = time.perf_counter()
            if sent >= deadline:
                return
            try:
                await stub.CreateReservation(request, timeout=30)
            except aio.AioRpcError as error:
                name = error.code().name
                errors[name] = errors.get(name, 0) + 1
            else:
                latencies.append(time.perf_counter() - sent)

    try:
        for channel in channels:
            await channel.channel_ready()
        cpu, started = time.process_time(), time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        for channel in channels:
            await channel.close()
    p50, p99 = percentiles(latencies)
    return ReserveRun(len(latencies) / elapsed, len(latencies), errors, p50, p99, cpu / elapsed)


def raw_reservation(
    rng: random.Random, stores: list[str], skus: int
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...], list[tuple[Any, ...]]]:
    """One random CHECKOUT hold as the server would write it: the hold statements' parameters
    (in sku order), the reservations row and the reservation_lines rows."""
    import uuid

    from omnistock.server.domain.reservations import (
        NewReservation,
        ReservationLine,
        ReservationMethod,
        new_reservation_id,
    )

    store, lines = reservation_spec(rng, stores, skus)
    ttl = timedelta(minutes=15)
    fingerprint = NewReservation(
        store, tuple(ReservationLine(s, q) for s, q in lines), ReservationMethod.CHECKOUT, ttl
    ).fingerprint
    now_us = time.time_ns() // 1000
    expires_us = now_us + ttl // timedelta(microseconds=1)
    fresh_after_us = now_us - 86_400_000_000  # a store's freshness budget: 24 hours
    rid = new_reservation_id()
    holds = [(q, s, store, fresh_after_us, 0, q) for s, q in sorted(lines)]  # safety stock: 0
    row = (rid, store, "CHECKOUT", "ACTIVE", uuid.uuid4().hex, fingerprint, "", now_us,
           expires_us, None, None, True, RAW_OWNER)  # fmt: skip
    return holds, row, [(rid, s, store, q, expires_us) for s, q in lines]


RAW_OWNER = "bench"


def raw_checks(cursor: Any, key_sql: str, lapsed_sql: str, row: tuple[Any, ...]) -> None:
    """The server's reads before the holds: the idempotency key, the location's lapsed holds."""
    cursor.execute(key_sql, (RAW_OWNER, row[4]))
    cursor.fetchall()
    cursor.execute(lapsed_sql, (row[7], row[1]))
    cursor.fetchall()


def raw_sqlite_reservations(
    path: Path, stores: list[str], skus: int, *, duration: float, seed: int
) -> ReserveRun:
    """The baseline: the server's statements on sqlite3, one process, one connection, one
    write transaction (BEGIN IMMEDIATE ... COMMIT) per reservation, the server's pragmas."""
    import sqlite3

    hold, insert, insert_lines, key, lapsed = (
        s.format(m="?") for s in (HOLD_SQL, RESERVATION_SQL, LINE_SQL, KEY_SQL, LAPSED_SQL)
    )
    rng = random.Random(seed)
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=30000",
    ):
        connection.execute(f"PRAGMA {pragma}")
    cursor = connection.cursor()
    latencies: list[float] = []
    short = 0
    started = time.perf_counter()
    deadline = started + duration
    while (sent := time.perf_counter()) < deadline:
        holds, row, lines = raw_reservation(rng, stores, skus)
        cursor.execute("BEGIN IMMEDIATE")
        raw_checks(cursor, key, lapsed, row)
        held = 0
        for params in holds:
            cursor.execute(hold, params)
            held += cursor.rowcount
        if held != len(holds):
            cursor.execute("ROLLBACK")
            short += 1
            continue
        cursor.execute(insert, row)
        cursor.executemany(insert_lines, lines)
        cursor.execute("COMMIT")
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    connection.close()
    p50, p99 = percentiles(latencies)
    errors = {"short of stock": short} if short else {}
    return ReserveRun(len(latencies) / elapsed, len(latencies), errors, p50, p99)


def raw_postgres_reservations(
    url: str, stores: list[str], skus: int, *, duration: float, seed: int, connections: int
) -> ReserveRun:
    """The baseline: the server's statements on psycopg, one process, CONNECTIONS threads each
    with its own connection (autocommit off), one transaction per reservation."""
    import threading

    import psycopg

    hold, insert, insert_lines, key, lapsed = (
        s.format(m="%s") for s in (HOLD_SQL, RESERVATION_SQL, LINE_SQL, KEY_SQL, LAPSED_SQL)
    )
    latencies: list[float] = []
    errors: dict[str, int] = {}
    opened = [
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        for _ in range(connections)
    ]
    ready = threading.Barrier(connections + 1)
    deadline = 0.0

    def run(connection: Any, seed: int) -> None:
        rng = random.Random(seed)
        cursor = connection.cursor()
        ready.wait()
        while (sent := time.perf_counter()) < deadline:
            holds, row, lines = raw_reservation(rng, stores, skus)
            try:
                raw_checks(cursor, key, lapsed, row)
                held = 0
                for params in holds:
                    cursor.execute(hold, params)
                    held += cursor.rowcount
                if held != len(holds):
                    connection.rollback()
                    errors["short of stock"] = errors.get("short of stock", 0) + 1
                    continue
                cursor.execute(insert, row)
                cursor.executemany(insert_lines, lines)
                connection.commit()
            except psycopg.Error as error:
                connection.rollback()
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - sent)

    threads = [
        threading.Thread(target=run, args=(connection, seed * 100 + i))
        for i, connection in enumerate(opened)
    ]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline = started + duration
    ready.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for connection in opened:
        connection.close()
    p50, p99 = percentiles(latencies)
    return ReserveRun(len(latencies) / elapsed, len(latencies), errors, p50, p99)


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run this thread (and the threads it starts) on CPU, then go back."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def check_reservation_totals(url: str, expected: int) -> str:
    """Every success is one stored reservation, and stock.reserved adds up to its lines."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT COUNT(*) FROM reservations WHERE state = 'ACTIVE'")
        ).scalar()
        held = connection.execute(text("SELECT COALESCE(SUM(reserved), 0) FROM stock")).scalar()
        lines = connection.execute(
            text("SELECT COALESCE(SUM(quantity), 0) FROM reservation_lines WHERE counted")
        ).scalar()
    engine.dispose()
    if stored != expected or held != lines:
        sys.exit(
            f"totals: {stored:,} active reservations (expected {expected:,}); reserved {held:,}, lines {lines:,}"
        )
    return f"{stored:,} active reservations, stock.reserved = their lines' {held:,} units"


def show_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(errors.items())) or "none"


def reserve_baseline(
    kind: str, url: str, stores: list[str], args: argparse.Namespace, seconds: float, seed: int
) -> ReserveRun:
    with on_cpu(SERVER_CPU):  # the server's core: the server is idle meanwhile
        if kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            return raw_sqlite_reservations(path, stores, args.skus, duration=seconds, seed=seed)
        return raw_postgres_reservations(
            url, stores, args.skus, duration=seconds, seed=seed, connections=args.base_connections
        )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process PID (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reserve_served(
    server: subprocess.Popen[bytes],
    target: str,
    stores: list[str],
    args: argparse.Namespace,
    seconds: float,
    seed: int,
    concurrency: int | None = None,
) -> ReserveRun:
    cpu, started = cpu_seconds(server.pid), time.perf_counter()
    in_flight = args.concurrency if concurrency is None else concurrency
    run = asyncio.run(
        reservation_load(
            target, stores, args.skus, duration=seconds, concurrency=in_flight, seed=seed
        )
    )
    run.server_cpu = (cpu_seconds(server.pid) - cpu) / (time.perf_counter() - started)
    return run


@dataclass
class ReserveResult:
    kind: str
    base_name: str
    bases: list[ReserveRun]
    ours: list[ReserveRun]
    light: ReserveRun | None = None  # latency at a light load

    @property
    def ratios(self) -> list[float]:
        return [o.rate / b.rate for b, o in zip(self.bases, self.ours, strict=True)]

    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for run in self.ours:
            for name, count in run.errors.items():
                total[name] = total.get(name, 0) + count
        return total


def reserve_on(kind: str, tmp: Path, stores: list[str], args: argparse.Namespace) -> ReserveResult:
    """A fresh database of KIND, loaded through the server; then baseline and ours alternate."""
    url = fresh_database(kind, tmp)
    base_name = (
        "sqlite3, 1 connection"
        if kind == "sqlite"
        else f"psycopg, {args.base_connections} connections"
    )
    result = ReserveResult(kind, base_name, [], [])
    process, target = start_server(url)
    try:
        load_reservation_data(target, stores, args.skus)
        check_sdk(target, stores[0])
        # Warm both, then alternate so that drift in the machine hits both alike.
        made = reserve_served(process, target, stores, args, 2, 1).succeeded
        made += reserve_baseline(kind, url, stores, args, 1, 2).succeeded
        for round_number in range(1, args.rounds + 1):
            base = reserve_baseline(kind, url, stores, args, args.duration, 10 + round_number)
            ours = reserve_served(process, target, stores, args, args.duration, 20 + round_number)
            made += base.succeeded + ours.succeeded
            result.bases.append(base)
            result.ours.append(ours)
            print(
                f"  {kind} round {round_number}: baseline {base.rate:,.0f}/s (p50 {base.p50_ms:.2f} ms,"
                f" p99 {base.p99_ms:.2f} ms, errors {show_errors(base.errors)});"
                f" CreateReservation {ours.rate:,.0f}/s ({ours.rate / base.rate:.2f} x, p50 {ours.p50_ms:.1f} ms,"
                f" p99 {ours.p99_ms:.1f} ms, errors {show_errors(ours.errors)}, server CPU {ours.server_cpu:.0%}, load CPU {ours.load_cpu:.0%})"
            )
        light = args.light_concurrency
        result.light = reserve_served(process, target, stores, args, 5, 99, concurrency=light)
        made += result.light.succeeded
        print(
            f"  {kind} light load, {light} in flight: CreateReservation {result.light.rate:,.0f}/s,"
            f" p50 {result.light.p50_ms:.2f} ms, p99 {result.light.p99_ms:.2f} ms,"
            f" errors {show_errors(result.light.errors)}, server CPU {result.light.server_cpu:.0%}"
        )
    finally:
        stop(process)
    print(f"  {kind} totals: {check_reservation_totals(url, made)}")
    return result


def reserve(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {LOAD_CPU})
    print(f"machine: {machine()}")
    stores = reserve_store_ids(args.stores)
    with tempfile.TemporaryDirectory(dir=DATA_DIR if DATA_DIR.exists() else None) as tmp_dir:
        kinds = ("sqlite", "postgresql") if not args.sqlite_only else ("sqlite",)
        results = [reserve_on(kind, Path(tmp_dir), stores, args) for kind in kinds]
    print()
    print(
        f"Median of {args.rounds} rounds of {args.duration:g} s; {args.concurrency} calls in flight,"
        " closed loop; latency is the client's, per call."
    )
    print(
        "| database | baseline | baseline reservations/s | CreateReservation reservations/s | ratio"
        f" | p50 | p99 | p50 / p99 at {args.light_concurrency} in flight | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        assert r.light is not None
        light = r.light
        rounds = ", ".join(f"{ratio:.2f}" for ratio in r.ratios)
        print(
            f"| {r.kind} | {r.base_name} | {median([b.rate for b in r.bases]):,.0f}"
            f" | {median([o.rate for o in r.ours]):,.0f} | {median(r.ratios):.2f} x (rounds {rounds})"
            f" | {median([o.p50_ms for o in r.ours]):.1f} ms | {median([o.p99_ms for o in r.ours]):.1f} ms"
            f" | {light.p50_ms:.2f} ms / {light.p99_ms:.2f} ms | {show_errors(r.errors())} |"
        )
    rate = median([o.rate for o in results[0].ours])
    print()
    print(
        f"bar: SQLite >= 500 reservations/s: {rate:,.0f}/s -> {'PASS' if rate >= 500 else 'FAIL'}"
    )


def main() -> None:
    import bench_mixed
    import bench_watch
    import bench_watch_load

    parser = argparse.ArgumentParser(description="omnistock benchmarks (see the module docstring)")
    commands = parser.add_subparsers(dest="command", required=True)
    bench_limits.register(commands)  # scripts/bench_limits.py
    empty = commands.add_parser("serve-empty", help="(internal) run the baseline server")
    empty.add_argument("listen")
    avail = commands.add_parser(
        "availability", help="GetAvailability and BatchGetAvailability vs baseline"
    )
    avail.add_argument("--before", help="also measure the server of this checkout, alternating")
    avail.add_argument("--stores", type=int, default=1000)
    avail.add_argument("--skus", type=int, default=10000)
    avail.add_argument("--duration", type=float, default=10)
    avail.add_argument("--rounds", type=int, default=3)
    avail.add_argument("--clients", type=int, default=4)
    avail.add_argument("--streams", type=int, default=16)
    avail.add_argument(
        "--read-cache-size",
        type=int,
        default=None,
        help="pass to the server; 0 measures every read on the database",
    )
    observe = commands.add_parser(
        "observability",
        help="GetAvailability with metrics off and on (access log off), then the access log's"
        " own cost, in one run",
    )
    observe.add_argument("--stores", type=int, default=1000)
    observe.add_argument("--skus", type=int, default=10000)
    observe.add_argument("--duration", type=float, default=10)
    observe.add_argument("--rounds", type=int, default=3)
    observe.add_argument("--clients", type=int, default=4)
    observe.add_argument("--streams", type=int, default=16)
    near = commands.add_parser("search", help="SearchNearby vs baseline on 10,000 stores")
    near.add_argument("--before", help="also measure the server of this checkout, alternating")
    near.add_argument("--stores", type=int, default=10_000)
    near.add_argument("--skus", type=int, default=100_000)
    near.add_argument("--per-store", type=int, default=500)
    near.add_argument("--duration", type=float, default=10)
    near.add_argument("--rounds", type=int, default=3)
    near.add_argument("--clients", type=int, default=4)
    near.add_argument("--streams", type=int, default=16)
    feed = commands.add_parser("ingest", help="snapshots vs raw inserts / COPY, and delta streams")
    feed.add_argument("--records", type=int, default=1_000_000)
    feed.add_argument("--deltas", type=int, default=200_000)
    feed.add_argument("--sqlite-only", action="store_true")
    feed.add_argument("--rounds", type=int, default=3)
    hold = commands.add_parser(
        "reserve", help="CreateReservation throughput vs the same writes on the driver"
    )
    hold.add_argument("--stores", type=int, default=50)
    hold.add_argument("--skus", type=int, default=2_000)
    hold.add_argument("--duration", type=float, default=10)
    hold.add_argument("--rounds", type=int, default=3)
    hold.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    hold.add_argument(
        "--light-concurrency",
        type=int,
        default=1,
        help="calls in flight for the light-load latency",
    )
    hold.add_argument(
        "--base-connections", type=int, default=8, help="PostgreSQL baseline's connections"
    )
    hold.add_argument("--sqlite-only", action="store_true")
    fan = commands.add_parser(
        "watch", help="WatchAvailability fan-out vs an empty streaming handler (bench_watch.py)"
    )
    bench_watch.add_arguments(fan)
    empty_watch = commands.add_parser("serve-watch-empty", help="(internal) the watch baseline")
    empty_watch.add_argument("listen")
    __import__("bench_channel").add_parser(commands)  # `channel`: scripts/bench_channel.py
    bench_mixed.register(commands)
    args = parser.parse_args()
    if hasattr(args, "run"):  # commands in modules of their own
        args.run(args)
    elif args.command == "limits":
        bench_limits.run(args)
    elif args.command == "search":
        search(args)
    elif args.command == "ingest":
        ingest(args)
    elif args.command == "reserve":
        reserve(args)
    elif args.command == "watch":
        bench_watch.watch(args)
    elif args.command == "serve-watch-empty":
        asyncio.run(bench_watch_load.serve_watch_empty(args.listen))
    elif args.command == "serve-empty":
        asyncio.run(serve_empty(args.listen))
    elif args.command == "availability":
        availability(args)
    elif args.command == "observability":
        observability(args)


if __name__ == "__main__":
    main()
