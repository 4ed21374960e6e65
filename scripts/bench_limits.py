"""`scripts/bench.py limits`: what a key's rate limit costs a call, in process.

    .venv/bin/python scripts/bench.py limits [--calls 20000] [--postgres URL] [--redis URL]

The transport's RateLimiter as every call pays it (``await limiter.wait(key)``), for one
key with room to spare, on one event loop, so each figure is the limiter alone (no gRPC):
- local: the process's own token bucket (the code before shared limits);
- database (SQLite file; PostgreSQL with --postgres) and redis (with --redis), each with
  leases of 100 tokens (rate 10^6/s, burst 1,000: 10 % of the burst) and with leases of
  1 token (burst 10), which makes every call a round trip (a tenth of the calls).
Calls one after another (latency per call) and 32 at a time (the mean cost per call when
calls overlap: a lease request is shared by the calls waiting for it). Results are
microseconds a call, medians of --rounds rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from omnistock.server.domain.rate_limits import Grant
from omnistock.server.domain.security import Principal, Role
from omnistock.server.service.rate_limits import SharedRateLimits
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.rate_limits import DatabaseBuckets
from omnistock.server.transport.auth import RateLimiter
from omnistock.server.transport.blocking import BlockingRunner

LEASED = (1e9, 1_000)  # rate, burst: leases of 100 tokens
UNLEASED = (1e9, 10)  # leases of 1 token: a round trip a call


def register(commands: Any) -> None:
    limits = commands.add_parser("limits", help="a key's rate limit's cost per call, in process")
    limits.add_argument("--calls", type=int, default=20_000)
    limits.add_argument("--rounds", type=int, default=3)
    limits.add_argument("--postgres", default="", help="also PostgreSQL at this URL")
    limits.add_argument("--redis", default="", help="also Redis at this URL")


async def _per_call(limiter: RateLimiter, who: Principal, calls: int, together: int) -> float:
    """Microseconds a call: ``calls`` calls, ``together`` at a time."""

    async def run(count: int) -> None:
        for _ in range(count):
            if await limiter.wait(who) > 0:
                raise SystemExit("the key ran out of tokens: the figure would be wrong")

    await run(50)  # warm: the first lease, connections
    began = time.perf_counter()
    await asyncio.gather(*(run(calls // together) for _ in range(together)))
    return (time.perf_counter() - began) / (calls // together * together) * 1e6


def _database(url: str) -> tuple[SharedRateLimits, Callable[[], Awaitable[None]]]:
    migrate(engine := create_database_engine(url, pool_size=1))
    engine.dispose()
    buckets, runner = DatabaseBuckets(url, timeout=5.0), BlockingRunner(2)

    async def take(key_id: str, rate: float, burst: int, want: int) -> Grant:
        return await runner.run(buckets.take, key_id, rate, burst, want)

    async def close() -> None:
        runner.shutdown()
        buckets.close()

    return SharedRateLimits(take, store="database", timeout=5.0), close


def _redis(url: str) -> tuple[SharedRateLimits, Callable[[], Awaitable[None]]]:
    from omnistock.server.store.rate_limits_redis import RedisBuckets

    redis = RedisBuckets(url, timeout=5.0)
    return SharedRateLimits(redis.take, store="redis", timeout=5.0), redis.close


async def _measure(args: argparse.Namespace, folder: Path) -> None:
    stores: list[tuple[str, Callable[[], tuple[SharedRateLimits, Any] | None]]] = [
        ("local", lambda: None),
        ("database: SQLite", lambda: _database(f"sqlite:///{folder / 'limits.db'}")),
    ]
    if args.postgres:
        stores.append(("database: PostgreSQL", lambda: _database(args.postgres)))
    if args.redis:
        stores.append(("redis", lambda: _redis(args.redis)))
    print(f"{'store':22} {'lease':>6} {'one at a time':>14} {'32 at a time':>13}  (us a call)")
    for name, make in stores:
        for lease, (rate, burst) in (("100", LEASED), ("1", UNLEASED)):
            if name == "local" and lease == "1":
                continue
            made = make()
            limiter = RateLimiter(shared=None if made is None else made[0])
            figures: dict[int, list[float]] = {1: [], 32: []}
            for round_ in range(args.rounds):
                for together in (1, 32):
                    who = Principal(
                        f"bench-{lease}-{together}-{round_}-{time.monotonic_ns()}", "bench",
                        frozenset({Role.READ}), rate_per_second=rate, burst=burst,
                    )  # fmt: skip
                    calls = args.calls if lease == "100" else args.calls // 10
                    figures[together].append(await _per_call(limiter, who, calls, together))
            if made is not None:
                await made[1]()
            one, many = (statistics.median(figures[n]) for n in (1, 32))
            shown = "-" if name == "local" else lease
            print(f"{name:22} {shown:>6} {one:14.1f} {many:13.1f}")


def run(args: argparse.Namespace) -> None:
    from bench import machine

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_measure(args, Path(folder)))
