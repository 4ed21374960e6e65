"""Shared fixtures. Storage and service tests run on SQLite, and on PostgreSQL when
OMNISTOCK_TEST_POSTGRES_URL names a server (.ci/run sets it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from omnistock.client import Client
from omnistock.server.store.database import normalize_url
from omnistock.server.testing import InProcessServer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("OMNISTOCK_TEST_POSTGRES_URL", "")
# One database per test run, dropped at its end: runs side by side on one server (two
# checkouts, a developer beside CI) would otherwise drop each other's tables mid-test.
POSTGRES_TEST_DATABASE = f"omnistock_test_{os.getpid()}"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FixedClock:
    """A clock tests can set and move."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _postgres_test_url() -> str:
    """A database of this run's own on the given server, created once, emptied per test."""
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"),
            {"name": POSTGRES_TEST_DATABASE},
        ).first()
        if not exists:
            connection.execute(text(f"CREATE DATABASE {POSTGRES_TEST_DATABASE}"))
    admin.dispose()
    return (
        make_url(normalize_url(POSTGRES_URL))
        .set(database=POSTGRES_TEST_DATABASE)
        .render_as_string(hide_password=False)
    )


def _reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set OMNISTOCK_TEST_POSTGRES_URL (as .ci/run does)")
    yield _postgres_test_url()
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {POSTGRES_TEST_DATABASE} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind, one per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'omnistock.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def postgres_database_url(postgres_url: str) -> str:
    """An empty PostgreSQL database, for what only PostgreSQL has (LISTEN/NOTIFY)."""
    _reset_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def server(database_url: str, clock: FixedClock) -> Iterator[InProcessServer]:
    with InProcessServer(database_url=database_url, clock=clock) as running:
        yield running


@pytest.fixture
def client(server: InProcessServer) -> Iterator[Client]:
    with Client(server.target) as sdk:
        yield sdk
