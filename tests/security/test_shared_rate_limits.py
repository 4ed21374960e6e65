"""A key's rate is the same whatever the number of processes serving it.

Two real `omnistock serve` processes share one database (an SQLite file, PostgreSQL) or
one Redis; a key with rate R and burst B sends as fast as it can through both for T
seconds, from four threads. From its full bucket, the calls accepted in all are at most
R x T + B, plus a documented tolerance: a lease and a half a process (lease_size tokens
each), and a
quarter second of rate for the gap between the test's clock and the bucket's (process
start, the key's first lookup). Every other call is RESOURCE_EXHAUSTED with a retry delay.
The same load with --rate-limits local is accepted about twice over: the test can fail.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from omnistock.client import Client, ResourceExhaustedError, Retry
from omnistock.server.domain.rate_limits import lease_size
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure
from omnistock.server.store.database import create_database_engine
from omnistock.server.store.keys import KeyRepository
from processes import clean_env, free_port, wait_serving

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE = 20.0
BURST = 20
SECONDS = 3.0
PROCESSES = 2


def _redis_reachable() -> str:
    """'' when Redis answers at REDIS_URL, else why not."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5).ping()
    except redis.RedisError as error:
        return f"Redis not reachable at {REDIS_URL}: {error}"
    return ""


@contextmanager
def _servers(database_url: str, logs: Path, *flags: str) -> Iterator[tuple[list[str], str]]:
    """PROCESSES server processes on one database, checking keys, logging into ``logs``;
    and a key with RATE and BURST made after the first has brought the schema up to date."""
    processes: list[subprocess.Popen[bytes]] = []
    targets: list[str] = []
    key = ""
    try:
        for index in range(PROCESSES):
            target = f"127.0.0.1:{free_port()}"
            command = [sys.executable, "-m", "omnistock.server.cli", "serve", "--listen", target,
                       "--database-url", database_url, "--grace", "1", *flags]  # fmt: skip
            with (logs / f"server-{index}.log").open("wb") as log:
                processes.append(subprocess.Popen(command, env=clean_env(), stdout=log, stderr=log))
            wait_serving(target)
            targets.append(target)
            if not key:
                engine = create_database_engine(database_url, pool_size=1)
                _, key = KeyRepository(engine).create(
                    "busy-app", [Role.READ], locations=None, exposure=Exposure.BANDED,
                    rate_per_second=RATE, burst=BURST, now=datetime.now(UTC),
                )  # fmt: skip
                engine.dispose()
        yield targets, key
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    # No process fell back to its own buckets during the run.
    for index in range(len(processes)):
        assert "rate-limit store" not in (logs / f"server-{index}.log").read_text()


def _flood(targets: list[str], key: str) -> tuple[int, int, float, list[float]]:
    """Calls accepted and refused in all, the seconds the flood took, and the refusals'
    retry delays: two threads a server, each calling as fast as it can."""
    accepted = refused = 0
    delays: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(2 * len(targets))
    clients = [Client(t, api_key=key, retry=Retry(attempts=1)) for t in targets for _ in (0, 1)]

    def run(client: Client) -> None:
        nonlocal accepted, refused
        start.wait()
        ends = time.monotonic() + SECONDS
        while time.monotonic() < ends:
            try:
                list(client.list_locations())
                with lock:
                    accepted += 1
            except ResourceExhaustedError as error:
                with lock:
                    refused += 1
                    delays.append(
                        -1.0 if error.retry_after is None else error.retry_after.total_seconds()
                    )

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    for client in clients:
        client.close()
    return accepted, refused, took, delays


def _allowed(seconds: float) -> float:
    """R x T + B, the leases the processes may hold (a lease and a half each), and a quarter
    second of rate."""
    return RATE * seconds + BURST + PROCESSES * 1.5 * lease_size(RATE, BURST) + RATE * 0.25


def _assert_shared(targets: list[str], key: str) -> None:
    accepted, refused, took, delays = _flood(targets, key)
    assert accepted <= _allowed(took), (accepted, refused, took)
    # It was limited, not starved: most of the rate got through.
    assert accepted >= BURST + 0.7 * RATE * SECONDS, (accepted, refused, took)
    assert refused > accepted, "the flood sent more than the limit"
    assert delays and all(0 < delay <= 1.0 / RATE + 0.05 for delay in delays), delays[:10]


def test_two_processes_on_one_database_share_a_keys_rate(database_url: str, tmp_path: Path) -> None:
    with _servers(database_url, tmp_path, "--rate-limits", "database") as (targets, key):
        _assert_shared(targets, key)


def test_two_processes_on_one_redis_share_a_keys_rate(database_url: str, tmp_path: Path) -> None:
    if why := _redis_reachable():
        pytest.skip(why)
    flags = ("--rate-limits", "redis", "--redis-url", REDIS_URL)
    with _servers(database_url, tmp_path, *flags) as (targets, key):
        _assert_shared(targets, key)


def test_with_local_limits_two_processes_allow_a_key_twice_its_rate(
    database_url: str, tmp_path: Path
) -> None:
    with _servers(database_url, tmp_path, "--rate-limits", "local") as (targets, key):
        accepted, refused, took, _ = _flood(targets, key)
    assert accepted > 1.5 * (RATE * took + BURST), (accepted, refused, took)
