"""The event loop's CPU per change fanned out to N watch streams, in process, without gRPC.

    .venv/bin/python scripts/watch_cpu.py [--streams 1000] [--changes 30]

An OmnistockServer (SQLite, in a temporary folder) runs on this process's event loop; N
WatchAvailability streams are the servicer's own generators (Watcher.stream), each watching
the hot pair and 4 of its own as `bench.py watch` does, read by tasks that serialize every
message as gRPC would. Each change is a write to the hot pair through the SDK (on a thread);
the loop thread's CPU time (time.thread_time) from the write's start to the last stream's
message is the change's cost: the hub, every stream's step and its message, and the write's
own handler; not gRPC's sending, not the database. Less noisy than latency on a shared
machine: it counts only this thread's CPU. Run it with PYTHONPATH=<checkout>/server:<checkout>/client
to measure another checkout's server (before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import load_reservation_data, reserve_store_ids
from bench_watch_load import WATCH_ON_HAND, hot_update, watch_requests

SNAPSHOT, CHANGE = b"\x08\x01", b"\x08\x02"  # a response's first field: its kind


async def measure(streams: int, changes: int, folder: Path) -> list[float]:
    import grpc
    from omnistock.server.app import OmnistockServer
    from omnistock.server.config import ServerConfig
    from omnistock.v1 import feed_pb2

    server = OmnistockServer(
        ServerConfig(
            listen="127.0.0.1:0", insecure=True, database_url=f"sqlite:///{folder / 'w.db'}"
        )
    )
    port = await server.start()
    target = f"127.0.0.1:{port}"
    stores = reserve_store_ids(10)
    await asyncio.to_thread(load_reservation_data, target, stores, 500)
    watcher = server.availability_servicer._watcher
    got = [0] * (changes + 1)
    done = [asyncio.Event() for _ in range(changes + 1)]
    opened = asyncio.Event()
    count = {"open": 0}

    async def follow(request: object) -> None:
        changed = 0
        async for message in watcher.stream(request, None):  # type: ignore[arg-type]
            # Bytes as gRPC sends them (a server that yields messages: serialized here).
            raw = message if isinstance(message, bytes) else message.SerializeToString()
            if raw[:2] == SNAPSHOT:
                count["open"] += 1
                if count["open"] == streams:
                    opened.set()
            elif raw[:2] == CHANGE:  # one change at a time: the stream's k-th is change k
                got[changed] += 1
                if got[changed] == streams:
                    done[changed].set()
                changed += 1

    tasks = [asyncio.create_task(follow(r)) for r in watch_requests(stores, 500, streams, 4)]
    await opened.wait()
    costs = []
    with grpc.insecure_channel(target) as channel:
        write = channel.unary_unary(
            "/omnistock.v1.FeedService/ApplyStockUpdates",
            request_serializer=feed_pb2.ApplyStockUpdatesRequest.SerializeToString,
        )
        for k in range(changes + 1):
            request = hot_update(stores, WATCH_ON_HAND + k)
            started = time.thread_time()
            await asyncio.to_thread(write, request, timeout=30)
            await asyncio.wait_for(done[k].wait(), 60)
            if k:  # the first warms
                costs.append((time.thread_time() - started) * 1000)
            await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.stop(grace=0)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        costs = asyncio.run(measure(args.streams, args.changes, Path(folder)))
    per = statistics.median(costs)
    print(
        f"{args.streams:,} streams, {args.changes} changes: event loop CPU per change median"
        f" {per:.1f} ms (min {min(costs):.1f}, max {max(costs):.1f}) ="
        f" {per * 1000 / args.streams:.1f} us per stream"
    )


if __name__ == "__main__":
    main()
