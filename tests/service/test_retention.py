"""Retention: audit entries and finished reservations are purged after their configured
time by a background job; holds that still count, and newer rows, stay (both databases)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import minutes, store, update
from omnistock.client import Client, NotFoundError, ReservationMethod
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import AuditEntry
from omnistock.server.service.audit import AuditLog
from omnistock.server.service.retention import Retention
from omnistock.server.store.keys import AuditRepository
from omnistock.server.store.retention import purge
from omnistock.server.testing import InProcessServer

AMS = "NL-AMS-01"


def hold(client: Client, key: str) -> str:
    made = client.create_reservation(
        AMS, {"SKU-1": 1}, method=ReservationMethod.PICKUP, idempotency_key=key
    )
    return str(made.reservation_id)


def exists(client: Client, reservation_id: str) -> bool:
    try:
        client.get_reservation(reservation_id)
    except NotFoundError:
        return False
    return True


def test_finished_reservations_and_old_audit_entries_are_purged_by_the_job(
    database_url: str,
) -> None:
    clock = FixedClock()
    config = ServerConfig(listen="127.0.0.1:0", insecure=True, database_url=database_url)
    with InProcessServer(config, clock=clock) as server, Client(server.target) as client:
        client.upsert_locations([store(AMS)])
        client.apply_stock_updates([update(AMS, "SKU-1", 50, NOW - minutes(1))])
        released, fulfilled, committed, active = (hold(client, k) for k in "abcd")
        client.release_reservation(released)
        client.commit_reservation(fulfilled)
        client.fulfill_reservation(fulfilled)
        client.commit_reservation(committed)
        assert server.server is not None
        audit = AuditLog(AuditRepository(server.server.engine))
        for age in (130, 50):
            audit.record(AuditEntry(NOW - timedelta(days=age), "pos", "k1", "M", {"age": age}))
        audit.flush()
        audit.close()

    # A server started 31 days on purges at start: the audit entry older than 90 days then
    # (130 days before NOW; the one of 50 days stays), and the
    # reservations finished more than 30 days ago; the committed and active holds stay.
    later = FixedClock(NOW + timedelta(days=31))
    with InProcessServer(config, clock=later) as server, Client(server.target) as client:
        assert server.server is not None
        engine = server.server.engine
        deadline = time.monotonic() + 10
        while exists(client, released) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not exists(client, released)
        assert not exists(client, fulfilled)
        assert exists(client, committed) and exists(client, active)
        entries = AuditRepository(engine).recent(100)
        assert [e.detail["age"] for e in entries if "age" in e.detail] == [50]


def test_never_keeps_everything_and_a_second_purge_finds_nothing(database_url: str) -> None:
    config = ServerConfig(
        listen="127.0.0.1:0",
        insecure=True,
        database_url=database_url,
        retention=Retention(audit=None, reservations=None),
    )
    with InProcessServer(config, clock=FixedClock()) as server, Client(server.target) as client:
        client.upsert_locations([store(AMS)])
        client.apply_stock_updates([update(AMS, "SKU-1", 5, NOW - minutes(1))])
        client.release_reservation(hold(client, "x"))
        assert server.server is not None
        engine = server.server.engine
        far = NOW + timedelta(days=3650)
        kept = purge(engine, audit_before=None, reservations_before=None)
        assert (kept.audit_entries, kept.reservations) == (0, 0)
        first = purge(engine, audit_before=far, reservations_before=far, batch=1)
        again = purge(engine, audit_before=far, reservations_before=far)
        assert first.reservations == 1 and again.reservations == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("45d", timedelta(days=45)), ("never", None), ("12h", timedelta(hours=12))],
)
def test_retention_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta | None
) -> None:
    monkeypatch.setenv("OMNISTOCK_AUDIT_RETENTION", value)
    monkeypatch.setenv("OMNISTOCK_RESERVATION_RETENTION", value)
    keep = ServerConfig.from_env().retention
    assert replace(keep, every_seconds=0) == Retention(expected, expected, every_seconds=0)
