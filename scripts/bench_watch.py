"""`bench.py watch`: WatchAvailability fan-out against an empty streaming handler, in one run.

    .venv/bin/python scripts/bench.py watch [--streams 1000 [3000 10000]] [--clients 4]
        [--channels 10] [--changes 20] [--sqlite-only | --db sqlite postgresql]

For each --streams value (the curve), and each server (the baseline, then ours on a fresh
database of each --db kind): the streams are opened from --clients load processes, each with
--channels connections of its own and pinned away from the server's core where the machine
has a core to spare (the other core on two). Stream i watches, EXACT, the hot pair (the first
sku at the first store) and --own-pairs pairs of its own. The server's RSS (VmRSS) before the
streams open and after every stream has had its SNAPSHOT and sat idle 2 s gives the memory
per idle stream. Then --warmup + --changes writes to the hot pair (ApplyStockUpdates, a new
on_hand each), at least --spacing seconds apart and each only once every stream has the one
before, from the coordinating process: a stream's latency is its CHANGE's receipt (in its
load process) less the start of the write (CLOCK_MONOTONIC, one clock for every process of
the machine). p50/p90/p99/max over every stream and change, each change's slowest stream,
missed changes (a stream that never got a change), the server's CPU per change, and the load
processes' CPU per change (to show they keep up). The baseline: the same streams on a grpc.aio
server-streaming handler that pushes one prebuilt message to every open stream when a unary
Trigger is called (bench.py serve-watch-empty).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import bench
from bench import (
    DATA_DIR,
    RESERVE_ON_HAND,
    SERVER_CPU,
    cpu_seconds,
    free_port,
    fresh_database,
    load_reservation_data,
    machine,
    median,
    reserve_sku,
    reserve_store_ids,
    start_pinned,
    start_server,
    stop,
    wait_port,
)
from bench_watch_load import WATCH_ON_HAND, client_main, hot_update, load_cpus

OURS = (
    "/omnistock.v1.AvailabilityService/WatchAvailability",
    "/omnistock.v1.FeedService/ApplyStockUpdates",
)
EMPTY = ("/bench.Watch/Watch", "/bench.Watch/Trigger")


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process PID now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- the coordinator


@dataclass
class WatchRun:
    name: str
    streams: int
    changes: int
    open_seconds: float = 0.0  # from the first stream opened to the last SNAPSHOT
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # every stream, every change
    last_ms: list[float] = field(default_factory=list)  # per change: its slowest stream
    first_ms: list[float] = field(default_factory=list)  # per change: its fastest stream
    server_send_ms: list[float] = field(default_factory=list)  # per change: last send_time
    write_ms: list[float] = field(default_factory=list)  # the write (or trigger) call itself
    missed: int = 0
    unexpected: int = 0  # messages that were neither a SNAPSHOT nor an awaited CHANGE
    server_cpu_ms: float = 0.0  # server CPU per change over the fan-out phase, less idle
    load_cpu_ms: float = 0.0  # the load processes' CPU per change, all together
    message_bytes: int = 0

    @property
    def kb_per_stream(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 / self.streams

    def quantile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


def _expect(conns: list[Connection], kind: str, timeout: float) -> list[tuple[Any, ...]]:
    """One message of KIND from every load process (exits after TIMEOUT seconds)."""
    got: dict[int, tuple[Any, ...]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(conns):
        ready = wait([c for i, c in enumerate(conns) if i not in got], deadline - time.monotonic())
        if not ready:
            sys.exit(f"load processes: {len(got)} of {len(conns)} said {kind!r} in {timeout:g} s")
        for c in ready:
            message = c.recv()  # type: ignore[union-attr]
            if message[0] == kind:
                got[conns.index(c)] = message  # type: ignore[arg-type]
    return [got[i] for i in range(len(conns))]


def _wait_done(conns: list[Connection], k: int, timeout: float) -> None:
    """Until every load process says change K reached all its streams, or TIMEOUT."""
    waiting = set(range(len(conns)))
    deadline = time.monotonic() + timeout
    while waiting and (left := deadline - time.monotonic()) > 0:
        for c in wait([conns[i] for i in waiting], left):
            message = c.recv()  # type: ignore[union-attr]
            if message == ("done", k):
                waiting.discard(conns.index(c))  # type: ignore[arg-type]


def fan_out(
    name: str, pid: int, target: str, paths: tuple[str, str], streams: int, args: argparse.Namespace
) -> WatchRun:
    """Open STREAMS streams from args.clients load processes, wait for every SNAPSHOT, read
    the server's RSS, then make args.warmup + args.changes writes to the hot pair."""
    import grpc
    from omnistock.v1 import feed_pb2

    run = WatchRun(name, streams, args.changes)
    total = args.warmup + args.changes
    clients = min(args.clients, streams)
    spawn = multiprocessing.get_context("spawn")
    conns, processes = [], []
    for index in range(clients):
        ours, theirs = spawn.Pipe()
        plan = {
            "index": index, "clients": clients, "target": target, "watch_path": paths[0],
            "stores": args.stores, "skus": args.skus, "streams": streams,
            "own_pairs": args.own_pairs, "channels": args.channels, "total": total,
        }  # fmt: skip
        process = spawn.Process(target=client_main, args=(theirs, plan), daemon=True)
        process.start()
        conns.append(ours)
        processes.append(process)
    fan_timeout = max(5.0, streams / 500)  # how long a change may take to reach every stream
    stores = reserve_store_ids(args.stores)
    channel = grpc.insecure_channel(target)
    write = channel.unary_unary(
        paths[1], request_serializer=feed_pb2.ApplyStockUpdatesRequest.SerializeToString
    )
    started: list[tuple[float, float]] = []  # (perf_counter, time.time) at each write
    try:
        _expect(conns, "ready", 60)
        time.sleep(1)
        run.rss_before_mb = rss_mb(pid)
        for c in conns:
            c.send(("open",))
        run.open_seconds = max(m[1] for m in _expect(conns, "opened", max(60, streams / 100)))
        idle_cpu, idle_started = cpu_seconds(pid), time.perf_counter()
        time.sleep(2)
        run.rss_after_mb = rss_mb(pid)
        idle_rate = (cpu_seconds(pid) - idle_cpu) / (time.perf_counter() - idle_started)
        cpu = phase = 0.0
        for k in range(total):
            if k == args.warmup:
                cpu, phase = cpu_seconds(pid), time.perf_counter()
                for c in conns:
                    c.send(("measure",))
            request = hot_update(stores, WATCH_ON_HAND + k)
            start, wall = time.perf_counter(), time.time()
            started.append((start, wall))
            reply = write(request, timeout=30)
            run.write_ms.append((time.perf_counter() - start) * 1000)
            if name != "baseline":
                applied = feed_pb2.ApplyStockUpdatesResponse.FromString(reply).applied_count
                if applied != 1:
                    sys.exit(f"{name}: the write to the hot pair applied {applied} records")
            _wait_done(conns, k, fan_timeout)
            time.sleep(max(0.0, start + args.spacing - time.perf_counter()))
        # The server's CPU over the measured changes, less what it spends idle (timers, the
        # change log's poll) over as long.
        busy = cpu_seconds(pid) - cpu - idle_rate * (time.perf_counter() - phase)
        run.server_cpu_ms = busy * 1000 / args.changes
        for c in conns:
            c.send(("stop",))
        results = _expect(conns, "result", 120)
    finally:
        channel.close()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    run.write_ms = run.write_ms[args.warmup :]
    run.load_cpu_ms = sum(r[5] for r in results) * 1000 / args.changes
    run.unexpected = sum(r[3] for r in results)
    run.message_bytes = max(r[4] for r in results)
    for k in range(args.warmup, total):
        start, wall = started[k]
        got = [(t - start) * 1000 for r in results for t in r[1][k] if t]
        run.missed += streams - len(got)
        run.latencies_ms += got
        if got:
            run.first_ms.append(min(got))
            run.last_ms.append(max(got))
        sent = max(r[2][k] for r in results)
        if name != "baseline" and sent:
            run.server_send_ms.append((sent - wall) * 1000)
    return run


def report(run: WatchRun) -> None:
    if len(run.latencies_ms) < 2:
        print(f"  {run.name}: no changes received")
        return
    p50, p90, p99 = run.quantile(50), run.quantile(90), run.quantile(99)
    sends = (
        f"; server's last send_time {median(run.server_send_ms):.0f} ms after the write starts"
        f" (max {max(run.server_send_ms):.0f})"
        if run.server_send_ms
        else ""
    )
    print(
        f"  {run.name}: {run.streams:,} streams open (all SNAPSHOTs) in {run.open_seconds:.1f}s;"
        f" server RSS {run.rss_before_mb:.1f} -> {run.rss_after_mb:.1f} MB ="
        f" {run.kb_per_stream:.1f} KB per idle stream"
    )
    print(
        f"  {run.name}: {run.changes} changes x {run.streams:,} streams: p50 {p50:.1f} ms, p90 {p90:.1f} ms,"
        f" p99 {p99:.1f} ms, max {max(run.latencies_ms):.1f} ms; per change first stream"
        f" {median(run.first_ms):.1f} ms, last stream {median(run.last_ms):.1f} ms (median),"
        f" {max(run.last_ms):.1f} ms (worst); the write call {median(run.write_ms):.1f} ms"
        f"{sends}; missed {run.missed}, unexpected {run.unexpected}; server CPU"
        f" {run.server_cpu_ms:.0f} ms per change (load processes {run.load_cpu_ms:.0f} ms);"
        f" {run.message_bytes} bytes a CHANGE"
    )


def on_database(kind: str, tmp: Path, streams: int, args: argparse.Namespace) -> WatchRun:
    """A fresh database of KIND loaded through the server; one watch through the SDK; then
    the fan-out measurement."""
    from omnistock.client import Client, Exposure

    stores = reserve_store_ids(args.stores)
    url = fresh_database(kind, tmp)
    process, target = start_server(url)
    try:
        load_reservation_data(target, stores, args.skus)
        with (
            Client(target) as client,
            client.watch_availability(
                [(reserve_sku(0), stores[0])], exposure=Exposure.EXACT
            ) as stream,
        ):
            first = next(iter(stream))
        if first.availabilities[0].on_hand != RESERVE_ON_HAND:
            sys.exit(f"SDK check: the watch's SNAPSHOT says {first.availabilities[0]}")
        run = fan_out(kind, process.pid, target, OURS, streams, args)
    finally:
        stop(process)
    report(run)
    return run


def on_baseline(streams: int, args: argparse.Namespace) -> WatchRun:
    port = free_port()
    process = start_pinned(
        [sys.executable, bench.__file__, "serve-watch-empty", f"127.0.0.1:{port}"]
    )
    try:
        wait_port(port)
        run = fan_out("baseline", process.pid, f"127.0.0.1:{port}", EMPTY, streams, args)
    finally:
        stop(process)
    report(run)
    return run


def watch(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, load_cpus())
    print(f"machine: {machine()}")
    kinds = ["sqlite"] if args.sqlite_only else list(dict.fromkeys(args.db))
    results: list[tuple[int, list[WatchRun]]] = []
    for streams in args.streams:
        runs = [on_baseline(streams, args)]
        with tempfile.TemporaryDirectory(dir=DATA_DIR if DATA_DIR.exists() else None) as tmp:
            runs += [on_database(kind, Path(tmp), streams, args) for kind in kinds]
        results.append((streams, runs))
    print()
    print(
        f"streams from {args.clients} load processes (cores {sorted(load_cpus())}; the server on"
        f" core {SERVER_CPU}), {args.channels} connections each; each stream watches the hot pair"
        f" and {args.own_pairs} of its own (EXACT); {args.changes} changes to the hot pair, at"
        f" least {args.spacing:g} s apart (after {args.warmup} unmeasured); latency from the"
        " start of the write to each stream's receipt of the CHANGE."
    )
    print(
        "| streams | server | p50 | p90 | p99 | max | last stream per change (median / worst)"
        " | p99 vs baseline | missed | memory per idle stream | server CPU per change"
        " | load CPU per change |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for streams, runs in results:
        base = runs[0]
        for run in runs:
            if len(run.latencies_ms) < 2:
                print(f"| {streams:,} | {run.name} | no changes received |")
                continue
            ratio = run.quantile(99) / base.quantile(99) if len(base.latencies_ms) >= 2 else 0
            print(
                f"| {streams:,} | {run.name} | {run.quantile(50):.1f} ms | {run.quantile(90):.1f} ms"
                f" | {run.quantile(99):.1f} ms | {max(run.latencies_ms):.1f} ms"
                f" | {median(run.last_ms):.1f} / {max(run.last_ms):.1f} ms | {ratio:.2f} x"
                f" | {run.missed:,} | {run.kb_per_stream:.1f} KB | {run.server_cpu_ms:.0f} ms"
                f" | {run.load_cpu_ms:.0f} ms |"
            )
    print()
    for streams, runs in results:
        base = runs[0]
        for run in runs[1:]:
            if len(run.latencies_ms) < 2 or len(base.latencies_ms) < 2:
                continue
            ratio = run.quantile(99) / base.quantile(99)
            ok = ratio <= 1.3 and run.missed == 0
            print(
                f"bar: {streams:,} streams, {run.name}: fan-out p99 <= 1.3 x the empty handler's"
                f" and none missed: {ratio:.2f} x, {run.missed} missed -> {'PASS' if ok else 'FAIL'}"
            )


def add_arguments(fan: argparse.ArgumentParser) -> None:
    fan.add_argument(
        "--streams", type=int, nargs="+", default=[1_000], help="one run per value (the curve)"
    )
    fan.add_argument("--clients", type=int, default=4, help="load processes")
    fan.add_argument("--channels", type=int, default=10, help="connections per load process")
    fan.add_argument(
        "--own-pairs", type=int, default=4, help="pairs each stream watches besides the hot one"
    )
    fan.add_argument("--stores", type=int, default=10)
    fan.add_argument("--skus", type=int, default=500)
    fan.add_argument("--changes", type=int, default=20)
    fan.add_argument("--warmup", type=int, default=2, help="changes before the measured ones")
    fan.add_argument(
        "--spacing", type=float, default=0.75, help="least seconds between changes' starts"
    )
    fan.add_argument(
        "--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    fan.add_argument("--sqlite-only", action="store_true", help="as --db sqlite")
