"""Readiness follows the database, liveness does not; SIGTERM drains before it stops.
Real `omnistock serve` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omnistock.client import Client
from omnistock.server.store.database import normalize_url
from processes import clean_env, free_port, wait_serving
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def status(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return int(reply.status)


def wait_for(target: str, service: str, wanted: int, timeout: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if status(target, service) == wanted:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{service!r} never became {wanted}")


def serve(database_url: str, target: str, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen",
             target, "--database-url", database_url, "--grace", "2", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip


def test_sigterm_says_not_serving_and_still_serves_for_the_drain_delay(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    process = serve(f"sqlite:///{tmp_path / 'x.db'}", target, "--drain-seconds", "3",
                    log=tmp_path / "server.log")  # fmt: skip
    try:
        wait_serving(target)
        assert status(target, "omnistock.ready") == SERVING
        process.send_signal(signal.SIGTERM)
        wait_for(target, "", NOT_SERVING, timeout=2)
        assert status(target, "omnistock.ready") == NOT_SERVING
        # The drain: NOT_SERVING is visible, and calls are still answered.
        with Client(target) as client:
            assert list(client.list_locations()) == []
        time.sleep(0.5)
        assert process.poll() is None
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (tmp_path / "server.log").read_text()
    assert "drain 3s" in log and "omnistock stopped" in log and "Traceback" not in log


@pytest.fixture
def own_postgres_database() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of this test's own (it is made unreachable), and its name."""
    admin_url = os.environ.get("OMNISTOCK_TEST_POSTGRES_URL", "")
    if not admin_url:
        pytest.skip("PostgreSQL not configured: set OMNISTOCK_TEST_POSTGRES_URL (as .ci/run does)")
    name = f"omnistock_ready_{os.getpid()}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = make_url(normalize_url(admin_url)).set(database=name)
        yield url.render_as_string(hide_password=False), name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def set_reachable(name: str, reachable: bool) -> None:
    admin = create_engine(
        normalize_url(os.environ["OMNISTOCK_TEST_POSTGRES_URL"]), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(
            text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if reachable else 'false'}")
        )
        if not reachable:  # and cut the connections it has
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    admin.dispose()


def test_readiness_follows_the_database_and_liveness_does_not(
    own_postgres_database: tuple[str, str], tmp_path: Path
) -> None:
    url, name = own_postgres_database
    target = f"127.0.0.1:{free_port()}"
    process = serve(url, target, "--ready-check-seconds", "0.2", log=tmp_path / "server.log")
    try:
        wait_serving(target)
        wait_for(target, "omnistock.ready", SERVING)
        set_reachable(name, False)
        wait_for(target, "omnistock.ready", NOT_SERVING)
        assert status(target, "") == SERVING  # liveness: no restart for an outage
        assert status(target, "omnistock.v1.AvailabilityService") == SERVING
        set_reachable(name, True)
        wait_for(target, "omnistock.ready", SERVING)
        with Client(target) as client:  # and it serves from the database again
            assert list(client.list_locations()) == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (tmp_path / "server.log").read_text()
    assert "not ready: the database does not answer" in log
    assert "ready: the database answers again" in log
