"""A write call cut while its write runs (a deadline, a client that went) still writes: the
database thread finishes and commits. Each such write has its one audit entry, marked
``stopped``, on both databases (docs/security.md, "Audit log")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import store, update
from omnistock.client import ApiError, Client, Exposure
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure as DomainExposure
from omnistock.server.service.feeds import FeedService, SnapshotSession
from omnistock.server.service.incoming import IncomingService
from omnistock.server.service.reservations import ReservationService
from omnistock.server.store.keys import AuditEntry, KeyRepository
from omnistock.server.testing import InProcessServer

AMS = "NL-AMS-01"
NOW = datetime.now(UTC)
WRITE_SECONDS = 0.4  # how long each write takes here; the calls give up after a quarter of it
DEADLINE = WRITE_SECONDS / 4


@pytest.fixture
def secure(database_url: str) -> Iterator[InProcessServer]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as server:
        with Client(server.target, api_key=key(server, "ops", Role.ADMIN)) as admin:
            admin.upsert_locations([store(AMS)])
            admin.apply_stock_updates([update(AMS, "HELD", 5, NOW - timedelta(minutes=5))])
        yield server


def key(server: InProcessServer, name: str, *roles: Role) -> str:
    assert server.server is not None
    _, text = KeyRepository(server.server.engine).create(
        name, roles, locations=None, exposure=DomainExposure.EXACT,
        rate_per_second=1000.0, burst=1000, now=NOW,
    )  # fmt: skip
    return text


def slowed(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    """``owner.name`` takes WRITE_SECONDS longer, before it writes."""
    original = getattr(owner, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(WRITE_SECONDS)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)


def entries(server: InProcessServer, principal: str) -> list[AuditEntry]:
    """The principal's audit entries, once the cut call's write has had time to end."""
    assert server.server is not None
    deadline = time.monotonic() + 10
    while True:
        server.server.audit.flush()
        found = [e for e in server.server.audit.recent(50) if e.principal == principal]
        if found or time.monotonic() > deadline:
            time.sleep(WRITE_SECONDS)  # a second entry would have come by now
            server.server.audit.flush()
            return [e for e in server.server.audit.recent(50) if e.principal == principal]
        time.sleep(0.05)


def on_hand(client: Client, sku: str) -> int:
    [answer] = client.get_availability(sku, [AMS], exposure=Exposure.EXACT)
    return answer.on_hand


CUTS: dict[str, tuple[type, str, Callable[[Client], object], str, dict[str, object]]] = {
    "ApplyStockUpdates": (
        FeedService, "apply_stock_updates",
        lambda c: c.apply_stock_updates([update(AMS, "SKU-1", 4, NOW)], timeout=DEADLINE),
        "/omnistock.v1.FeedService/ApplyStockUpdates",
        {"locations": [AMS], "applied": 1, "stale": 0},
    ),
    "StreamDeltas": (
        FeedService, "apply_deltas",
        lambda c: list(c.stream_deltas(
            [[{"location_id": AMS, "sku": "SKU-1", "on_hand": 4, "source_updated_at": NOW}]],
            timeout=DEADLINE,
        )),
        "/omnistock.v1.FeedService/StreamDeltas",
        {"locations": [AMS], "batches": 1, "applied": 1, "stale": 0, "rejected": 0},
    ),
    "ImportSnapshot": (
        SnapshotSession, "commit",
        lambda c: c.import_snapshot(AMS, NOW, [("SKU-1", 4), ("HELD", 5)], timeout=DEADLINE),
        "/omnistock.v1.FeedService/ImportSnapshot",
        {"location_id": AMS, "received": 2},
    ),
}  # fmt: skip


@pytest.mark.parametrize("rpc", list(CUTS))
def test_a_feed_write_cut_at_its_deadline_is_audited_once_for_what_it_wrote(
    rpc: str, secure: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, name, call, method, detail = CUTS[rpc]
    slowed(monkeypatch, owner, name)
    with Client(secure.target, api_key=key(secure, "pos", Role.FEED, Role.READ)) as pos:
        with pytest.raises(ApiError):
            call(pos)
        [entry] = entries(secure, "pos")
        assert on_hand(pos, "SKU-1") == 4  # the write landed after the call was cut
    assert entry.method == method
    assert entry.detail == {**detail, "stopped": "CANCELLED"}


def test_a_hold_cut_at_its_deadline_is_audited_once(
    secure: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    slowed(monkeypatch, ReservationService, "create")
    with Client(secure.target, api_key=key(secure, "till", Role.RESERVE, Role.READ)) as till:
        with pytest.raises(ApiError):
            till.create_reservation(AMS, {"HELD": 2}, timeout=DEADLINE)
        [entry] = entries(secure, "till")
        [answer] = till.get_availability("HELD", [AMS], exposure=Exposure.EXACT)
        assert answer.reserved == 2
    assert entry.method == "/omnistock.v1.ReservationService/CreateReservation"
    assert entry.detail["location_id"] == AMS and entry.detail["stopped"] == "CANCELLED"


INCOMING_CUTS: dict[str, tuple[str, Callable[[Client], object], dict[str, object]]] = {
    "ApplyIncomingUpdates": (
        "apply_updates",
        lambda c: c.apply_incoming_updates(
            [{"location_id": AMS, "sku": "SKU-1", "line_id": "PO-1", "quantity": 4,
              "expected_date": "2030-01-15", "source_updated_at": NOW}],
            timeout=DEADLINE,
        ),
        {"locations": [AMS], "applied": 1, "stale": 0, "rejected": 0},
    ),
    "ImportIncomingSnapshot": (
        "import_snapshot",
        lambda c: c.import_incoming_snapshot(
            AMS, NOW, [("SKU-1", "PO-1", 4, "2030-01-15")], timeout=DEADLINE
        ),
        {"location_id": AMS, "applied": 1, "stale": 0, "zeroed": 0},
    ),
}  # fmt: skip


@pytest.mark.parametrize("rpc", list(INCOMING_CUTS))
def test_an_incoming_write_cut_at_its_deadline_is_audited_once_for_what_it_wrote(
    rpc: str, secure: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, call, detail = INCOMING_CUTS[rpc]
    slowed(monkeypatch, IncomingService, name)
    with Client(secure.target, api_key=key(secure, "buyer", Role.FEED)) as buyer:
        with pytest.raises(ApiError):
            call(buyer)
        [entry] = entries(secure, "buyer")
        # The write landed after the call was cut.
        assert [s.quantity for s in buyer.list_incoming_supply(location_id=AMS)] == [4]
    assert entry.method == f"/omnistock.v1.FeedService/{rpc}"
    assert entry.detail == {**detail, "stopped": "CANCELLED"}
