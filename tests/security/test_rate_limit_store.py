"""The shared bucket's own rules, on SQLite, PostgreSQL and Redis, and what a server does
when its shared store is unreachable.

- Takes racing from many threads never hand out a token twice: from a full bucket that
  barely refills, exactly ``burst`` tokens are granted in all, then none, with a retry delay.
- A refused take says when the next token comes; a key's lease never exceeds lease_size.
- With the store unreachable a server limits each key on its own (fails open to a local
  bucket begun with a lease's worth of tokens), logs a warning, and says so on /metrics;
  a store that never answers holds only the first call, for the timeout; once the store
  answers again, limits are shared again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keyring import keyring
from omnistock.client import ResourceExhaustedError, Retry
from omnistock.server.cli import main
from omnistock.server.domain.rate_limits import Grant, lease_size
from omnistock.server.domain.security import Role, new_key
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.rate_limits import DatabaseBuckets
from omnistock.server.store.rate_limits_redis import RedisBuckets
from processes import free_port
from prometheus_client.parser import text_string_to_metric_families
from test_shared_rate_limits import REDIS_URL, _redis_reachable

Take = Callable[[str, float, int, int], Grant]


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("store") == "redis"
    )


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def take(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Take]:
    """A shared bucket's take, called from any thread."""
    if request.param != "redis":
        database_url = (
            f"sqlite:///{tmp_path / 'o.db'}"
            if request.param == "sqlite"
            else request.getfixturevalue("postgres_database_url")
        )
        migrate(engine := create_database_engine(database_url, pool_size=1))
        engine.dispose()
        buckets = DatabaseBuckets(database_url, timeout=5.0)
        yield buckets.take
        buckets.close()
        return
    if why := _redis_reachable():
        pytest.skip(why)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    redis = RedisBuckets(REDIS_URL, timeout=5.0)

    def on_loop(key_id: str, rate: float, burst: int, want: int) -> Grant:
        future = asyncio.run_coroutine_threadsafe(redis.take(key_id, rate, burst, want), loop)
        return future.result()

    yield on_loop
    asyncio.run_coroutine_threadsafe(redis.close(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


def test_racing_takes_never_hand_out_a_token_twice(take: Take) -> None:
    key = new_key()[0]
    burst, granted, refusals = 300, [], []
    lock = threading.Lock()

    def run() -> None:
        while True:
            grant = take(key, 0.001, burst, 7)
            with lock:
                granted.append(grant.granted)
                if grant.granted == 0:
                    refusals.append(grant.retry_after)
                    return

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == burst
    assert all(0 <= g <= 7 for g in granted)
    # At 0.001 a second, the next token is most of 1,000 s away.
    assert len(refusals) == 6 and all(900 < wait <= 1000 for wait in refusals)


def test_a_refused_take_says_when_the_next_token_comes(take: Take) -> None:
    key = new_key()[0]
    assert take(key, 4.0, 2, 5) == Grant(2)
    refused = take(key, 4.0, 2, 5)
    assert refused.granted == 0 and 0 < refused.retry_after <= 0.25


def test_a_lease_is_a_small_share_of_the_burst_and_the_rate() -> None:
    assert lease_size(100.0, 200) == 5  # 50 ms of rate
    assert lease_size(10_000.0, 200) == 20  # 10 % of the burst
    assert lease_size(1.0, 2) == 1  # never less than one token


def test_an_unreachable_store_falls_back_to_each_process_own_bucket(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = {
        "rate_limits": "redis",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "metrics_listen": f"127.0.0.1:{port}",
    }
    caplog.set_level(logging.WARNING, "omnistock.rate_limits")
    with keyring(f"sqlite:///{tmp_path / 'o.db'}", **config) as ring:
        key = ring.key("app", Role.READ, rate=0.5, burst=3)
        with ring.client(key, retry=Retry(attempts=1)) as client:
            # The process's own bucket begins with a lease's worth (1 token here), not
            # the burst, and refills at the key's rate.
            assert list(client.list_locations()) == []
            with pytest.raises(ResourceExhaustedError) as refused:
                list(client.list_locations())
        assert refused.value.retry_after is not None
        assert 1.5 < refused.value.retry_after.total_seconds() <= 2.0
        assert _metric(port, "omnistock_rate_limit_shared") == 0
        assert _metric(port, "omnistock_rate_limit_store_failures_total") >= 1
    assert any("unreachable" in record.getMessage() for record in caplog.records)


def test_serve_refuses_redis_limits_without_a_redis_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--rate-limits", "redis", "--database-url", "sqlite://"]) == 2
    assert "--rate-limits redis needs --redis-url" in capsys.readouterr().err


def test_a_store_that_never_answers_holds_only_the_first_call_and_briefly(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        config = {
            "rate_limits": "redis",
            "redis_url": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
        }
        with keyring(f"sqlite:///{tmp_path / 'o.db'}", **config) as ring:
            key = ring.key("app", Role.READ, rate=100.0, burst=100)
            with ring.client(key, retry=Retry(attempts=1)) as client:
                began = time.monotonic()
                list(client.list_locations())  # waits for the store: 0.25 s at most
                first = time.monotonic() - began
                began = time.monotonic()
                for _ in range(5):
                    assert list(client.list_locations()) == []
                took = time.monotonic() - began
    # (Plus the key's lookup and the call itself, on a busy machine.)
    assert 0.25 <= first < 1.0
    # The first wait made the process fall back for a second: these five were limited
    # locally, without waiting for the store at all.
    assert took < 0.25


def test_limits_are_shared_again_once_the_store_answers(tmp_path: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    redis_port, metrics_port = free_port(), free_port()
    config = {
        "rate_limits": "redis",
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "metrics_listen": f"127.0.0.1:{metrics_port}",
    }
    with keyring(f"sqlite:///{tmp_path / 'o.db'}", **config) as ring:
        key = ring.key("app", Role.READ, rate=100.0, burst=100)
        with ring.client(key, retry=Retry(attempts=1)) as client:
            list(client.list_locations())
            assert _metric(metrics_port, "omnistock_rate_limit_shared") == 0
            redis = subprocess.Popen(
                [server, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                cwd=tmp_path,
            )
            try:
                _wait_for_redis(redis_port)
                time.sleep(1.1)  # the fallback lasts a second
                for _ in range(3):
                    assert list(client.list_locations()) == []
                assert _metric(metrics_port, "omnistock_rate_limit_shared") == 1
                assert _metric(metrics_port, "omnistock_rate_limit_leases_total") >= 1
                import redis as redis_client

                bucket = redis_client.Redis(port=redis_port).hgetall(
                    "omnistock:rate:" + key.split("_")[1]
                )
                assert float(bucket[b"tokens"]) < 100
            finally:
                redis.terminate()
                redis.wait(timeout=10)


def _wait_for_redis(port: int) -> None:
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, socket_timeout=0.5).ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
