"""The SDK's examples run against a seeded server (omnistock.client.testing) and say what a
user would expect."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import update
from omnistock.client import Client, ReservationState
from omnistock.client.testing import SKUS, STORES, LocalServer

EXAMPLES = Path(__file__).resolve().parents[2] / "client" / "examples"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def run(example: str, *args: str, timeout: float = 60) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_the_testing_kit_seeds_a_small_store(server: LocalServer) -> None:
    with server.client() as client:
        assert [loc.id for loc in client.list_locations()] == sorted(
            [store_id for store_id, *_ in STORES] + ["NL-WH-01"]
        )
        assert len(client.get_availability(SKUS[0])) == 4


def test_mobile_backend_lists_nearby_stores_and_ranked_options(server: LocalServer) -> None:
    lines = run(
        "mobile_backend.py", "--target", server.target, "--sku", "PHONE-1", "--sku", "CASE-1"
    )
    assert lines[0].startswith("Amsterdam Kalverstraat: ")
    assert "PHONE-1 IN_STOCK" in lines[0] and "ready" in lines[0]
    assert any(line.startswith("or shipped from NL-WH-01") for line in lines)
    assert any(line.startswith("option 1: PICKUP via NL-AMS-01") for line in lines)


def test_partner_pushes_stock_and_holds_an_item(server: LocalServer) -> None:
    lines = run("partner.py", "--target", server.target, "--store", "NL-UTR-01")
    assert lines[0] == "snapshot: 2 applied, 1 zeroed"  # CHARGER-1 was not in the snapshot
    assert lines[1] == "delta: 1 applied, 0 rejected"
    assert lines[2].endswith("(the retry got the same: True)")
    assert lines[3] == "state: COMMITTED"
    assert lines[4] == "PHONE-1 available to sell now: 4"  # 6, one sold, one held


def test_kiosk_shows_the_board_then_changes(server: LocalServer) -> None:
    kiosk = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "kiosk.py"), "--target", server.target,
         "--store", "NL-UTR-01", "--sku", "PHONE-1", "--events", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert kiosk.stdout is not None
    first = kiosk.stdout.readline().strip()
    assert first == "PHONE-1 at NL-UTR-01: LIMITED"
    with Client(server.target) as client:
        client.apply_stock_updates([update("NL-UTR-01", "PHONE-1", 9, datetime.now(UTC))])
    rest, _ = kiosk.communicate(timeout=30)
    assert rest.strip() == "PHONE-1 at NL-UTR-01: IN_STOCK (3+)"
    assert kiosk.returncode == 0


def test_incoming_feed_places_orders_changes_one_and_replaces_a_warehouses_lines(
    server: LocalServer,
) -> None:
    lines = run("incoming_feed.py", "--target", server.target)
    today = datetime.now(UTC).date()
    assert lines[:4] == [
        "purchase orders: 2 applied, 0 stale, 0 rejected",
        "transfer to NL-AMS-01: 1 applied",
        "supplier change: 1 applied, 1 stale",  # the late copy of the order changes nothing
        "NL-WH-01 snapshot: 2 applied, 0 stale, 1 dropped",  # the cases arrived
    ]
    due = lines[4:]
    assert due[0] == "PHONE-1 incoming:"
    assert due[1].startswith("  NL-AMS-01 TR-77-1: 6 due ") and due[1].endswith(" (counts)")
    assert due[2].startswith("  NL-WH-01 PO-1001-1: 40 due ") and due[2].endswith(" (counts)")
    assert due[3:] == [
        "NL-WH-01 expects:",
        f"  CHARGER-1 PO-1003-1: 80 due {today + timedelta(days=20)}",
        f"  PHONE-1 PO-1001-1: 40 due {today + timedelta(days=12)}",
    ]


def test_product_page_searches_through_the_web_channel_and_holds_through_it(
    server: LocalServer,
) -> None:
    # PHONE-1: Amsterdam has 5 and Utrecht 1, each keeping 1 back from the web channel.
    lines = run("product_page.py", "--target", server.target)
    assert lines[0].startswith("ship: IN_STOCK from NL-WH-01, delivered by ")
    assert lines[1].startswith("pickup at Amsterdam Kalverstraat: IN_STOCK, ready ")
    assert not any("Utrecht" in line for line in lines)  # its only unit is protected
    assert lines[2:] == ["ship: held at NL-WH-01", "pickup: held at NL-AMS-01"]
    with server.client() as client:  # both holds were given back
        assert not list(client.list_reservations(state=ReservationState.ACTIVE))
        assert len(list(client.list_reservations())) == 2
