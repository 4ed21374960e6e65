"""Across processes: a write through one server process reaches the read cache and the
watchers of another on the same database (through LISTEN/NOTIFY on PostgreSQL, the
polled change log on SQLite); and `serve --workers` shares one port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from factories import store, update
from omnistock.client import Client, Exposure, WatchEventKind
from processes import clean_env, free_port, serving, wait_serving
from sqlalchemy import create_engine, text

AMS = "NL-AMS-01"


def test_a_write_in_one_process_reaches_watchers_and_reads_in_another(database_url: str) -> None:
    now = datetime.now(UTC)
    # A long cache TTL: only the change bus can tell the other process's cache.
    slow_ttl = ("--read-cache-ttl", "600")
    with (
        serving(database_url, 2, *slow_ttl) as (one, other),
        Client(one) as writer,
        Client(other) as reader,
    ):
        writer.upsert_locations([store(AMS)])
        writer.apply_stock_updates([update(AMS, "PHONE", 5, now - timedelta(minutes=5))])
        # The other process caches the record, then must hear that it changed.
        assert reader.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].on_hand == 5
        watching = reader.watch_availability(
            [("PHONE", AMS)], exposure=Exposure.EXACT, heartbeat_seconds=1
        )
        with watching as watch:
            events = iter(watch)
            assert next(events).availabilities[0].available_to_sell == 5
            written = time.monotonic()
            writer.apply_stock_updates([update(AMS, "PHONE", 2, now - timedelta(minutes=1))])
            change = next(events)
            while change.kind == WatchEventKind.HEARTBEAT:
                assert time.monotonic() - written < 5, "the change never reached the watcher"
                change = next(events)
            heard = time.monotonic() - written
        assert change.availabilities[0].available_to_sell == 2
        assert reader.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].on_hand == 2
        writer.create_reservation(AMS, {"PHONE": 1})
        held = time.monotonic()
        while reader.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].reserved != 1:
            assert time.monotonic() - held < 2, "the hold never reached the other process"
            time.sleep(0.005)
    # The bound here is loose for busy test machines; docs/benchmarks.md has the figures.
    assert heard < 2.0


def test_a_process_that_lost_its_listener_connection_reads_everything_again(
    postgres_database_url: str,
) -> None:
    # LISTEN/NOTIFY is PostgreSQL's; SQLite's poller is tested in tests/service.
    database_url = postgres_database_url
    now = datetime.now(UTC)
    with serving(database_url, 1, "--read-cache-ttl", "600") as (target,), Client(target) as client:
        client.upsert_locations([store(AMS)])
        client.apply_stock_updates([update(AMS, "PHONE", 5, now - timedelta(minutes=5))])
        watching = client.watch_availability(
            [("PHONE", AMS)], exposure=Exposure.EXACT, heartbeat_seconds=1
        )
        with watching as watch:
            events = iter(watch)
            assert next(events).availabilities[0].available_to_sell == 5
            engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    # A change the bus never carries: the watcher is not told ...
                    connection.execute(
                        text("UPDATE stock SET on_hand = 9 WHERE sku = 'PHONE' AND location_id = :at"),
                        {"at": AMS},
                    )
                    assert next(events).kind == WatchEventKind.HEARTBEAT
                    # ... until the server's listener loses its connection, when notices may
                    # have been lost: on reconnecting it drops every copy and reads again.
                    ended = connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = ANY(:names)"
                        ),
                        {"names": our_listeners()},
                    ).all()
                    assert ended == [(True,)]
            finally:
                engine.dispose()
            lost = time.monotonic()
            change = next(events)
            while change.kind == WatchEventKind.HEARTBEAT:
                assert time.monotonic() - lost < 10, "the server never read the record again"
                change = next(events)
        assert change.availabilities[0].available_to_sell == 9
        assert client.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].on_hand == 9


def our_listeners() -> list[str]:
    """The listener connection names of this test's server processes (its children)."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return [f"omnistock-listen-{child}" for child in children]


def test_serve_workers_share_one_port(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen", target,
         "--database-url", f"sqlite:///{tmp_path / 'w.db'}", "--workers", "2", "--grace", "2"],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_serving(target)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 2
        now = datetime.now(UTC)
        with Client(target) as client:
            client.upsert_locations([store(AMS)])
            client.apply_stock_updates([update(AMS, "PHONE", 5, now - timedelta(minutes=5))])
        # Watchers on several connections land on both workers; a write through yet another
        # connection reaches every one of them.
        clients = [Client(target) for _ in range(6)]
        watches = [c.watch_availability([("PHONE", AMS)], exposure=Exposure.EXACT) for c in clients]
        streams = [iter(w) for w in watches]
        for stream in streams:
            assert next(stream).availabilities[0].available_to_sell == 5
        heard: list[int] = []

        def listen(stream: object) -> None:
            for event in stream:  # type: ignore[attr-defined]
                if event.kind == WatchEventKind.CHANGE:
                    heard.append(event.availabilities[0].available_to_sell)
                    return

        threads = [threading.Thread(target=listen, args=(s,), daemon=True) for s in streams]
        for thread in threads:
            thread.start()
        with Client(target) as client:
            client.apply_stock_updates([update(AMS, "PHONE", 3, now - timedelta(minutes=1))])
        for thread in threads:
            thread.join(timeout=10)
        assert heard == [3] * 6
        for watch, client in zip(watches, clients, strict=True):
            watch.cancel()
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
