"""Incoming supply seen from outside a write: a scoped key feeds and lists only its
locations, and every incoming write tells the change bus (this process's and the other
processes' on the database) which (sku, location) pairs changed; on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import store, warehouse
from incoming_lines import AMS, DAY, WH, line
from omnistock.client import Client, PermissionDeniedError
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure
from omnistock.server.service.changes import Changes
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer


@pytest.fixture
def feeding(client: Client) -> Client:
    client.upsert_locations([warehouse(WH), store(AMS)])
    return client


@pytest.fixture
def keyed(database_url: str) -> Iterator[tuple[InProcessServer, KeyRepository, str]]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)
        _, ops = keys.create(
            "ops", [Role.ADMIN], locations=None, exposure=Exposure.EXACT,
            rate_per_second=10_000.0, burst=10_000, now=NOW,
        )  # fmt: skip
        yield server, keys, ops


def test_a_scoped_key_lists_and_feeds_only_its_locations(
    keyed: tuple[InProcessServer, KeyRepository, str],
) -> None:
    server, keys, ops = keyed
    _, buyer = keys.create(
        "wh-buyer", [Role.FEED], locations=[WH], exposure=Exposure.EXACT,
        rate_per_second=10_000.0, burst=10_000, now=NOW,
    )  # fmt: skip
    with Client(server.target, api_key=ops) as admin:
        admin.upsert_locations([warehouse(WH), store(AMS)])
        admin.apply_incoming_updates(
            [line(AMS, "PHONE", f"TR-{i}", 1) for i in range(5)] + [line(WH, "PHONE", "PO-1", 9)]
        )
    with Client(server.target, api_key=buyer) as client:
        # Filtered before paging: the first page of one already holds the warehouse's line.
        first = next(iter(client.list_incoming_supply(sku="PHONE", page_size=1).pages))
        assert [(s.location_id, s.line_id) for s in first.lines] == [(WH, "PO-1")]
        assert first.next_page_token == ""
        with pytest.raises(PermissionDeniedError):
            next(iter(client.list_incoming_supply(location_id=AMS)))
        with pytest.raises(PermissionDeniedError):
            client.apply_incoming_updates([line(AMS, "PHONE", "TR-9", 1)])
        with pytest.raises(PermissionDeniedError):
            client.import_incoming_snapshot(AMS, NOW, [])
        assert client.apply_incoming_updates([line(WH, "PHONE", "PO-2", 1)]).applied_count == 1


def test_every_incoming_write_tells_the_change_bus_which_pairs_changed(
    feeding: Client, server: InProcessServer
) -> None:
    assert server.server is not None
    heard: list[frozenset[tuple[str, str]]] = []
    lock = threading.Lock()

    def listen(changes: Changes) -> None:
        if changes.incoming:
            with lock:
                heard.append(changes.incoming)

    server.server.changes.subscribe(listen)
    feeding.apply_incoming_updates(
        [line(WH, "PHONE", "PO-1", 5, at=NOW - timedelta(hours=1)), line(AMS, "CASE", "TR-1", 2)]
    )
    feeding.apply_incoming_updates([line("NL-NOPE-01", "PHONE", "PO-1", 5)])  # rejected: silent
    feeding.import_incoming_snapshot(WH, NOW, [("CHARGER", "PO-2", 1, DAY)])
    assert heard == [
        frozenset({("PHONE", WH), ("CASE", AMS)}),
        # The snapshot: the pair it set, and the pair whose line it dropped.
        frozenset({("CHARGER", WH), ("PHONE", WH)}),
    ]


def test_another_server_on_the_database_hears_the_incoming_pairs(
    feeding: Client, database_url: str, clock: FixedClock
) -> None:
    heard: list[frozenset[tuple[str, str]]] = []
    arrived = threading.Event()

    def listen(changes: Changes) -> None:
        if changes.incoming:
            heard.append(changes.incoming)
            arrived.set()

    with InProcessServer(database_url=database_url, clock=clock) as other:
        assert other.server is not None
        other.server.changes.subscribe(listen)
        feeding.apply_incoming_updates([line(WH, "PHONE", "PO-1", 5)])
        assert arrived.wait(5)
    assert heard == [frozenset({("PHONE", WH)})]
