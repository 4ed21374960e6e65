"""Exposure that holds: a key without the exact grant never learns a count, on both databases.

Each finding of the review has its test here: confidence solved for ATS, a refused hold that
stated the count, and quantities used as a probe. tests/security/test_banded_replies.py
checks the rule as a whole, reply by reply, byte for byte.

The clock stands at NOW; stock is reported at NOW (age 0) unless a test says otherwise.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, FixedClock
from factories import store, update, warehouse
from omnistock.client import (
    Client,
    Exposure,
    FailedPreconditionError,
    InvalidArgumentError,
    LatLng,
    StockStatus,
    WatchAvailabilityResponse,
    WatchEventKind,
    cart,
    origin,
)
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import DEFAULT_BANDED_MAX_QUANTITY
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

AMS, WH = "NL-AMS-01", "NL-WH-01"
DAM = origin(latitude=52.3731, longitude=4.8926)
CAP = DEFAULT_BANDED_MAX_QUANTITY


@dataclass
class Shop:
    server: InProcessServer
    keys: KeyRepository

    def client(self, *roles: Role, exposure: Exposure = Exposure.BANDED) -> Client:
        from omnistock.server.domain.stock import Exposure as DomainExposure

        _, key = self.keys.create(
            f"{exposure.name.lower()}-{len(roles)}", roles or (Role.READ, Role.RESERVE),
            locations=None, exposure=DomainExposure(int(exposure)), rate_per_second=1000.0, burst=1000, now=NOW,
        )  # fmt: skip
        return Client(self.server.target, api_key=key)


def secure_shop(database_url: str, clock: FixedClock, **options: object) -> InProcessServer:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url, **options)  # type: ignore[arg-type]
    return InProcessServer(config, clock=clock)


@pytest.fixture
def shop(database_url: str, clock: FixedClock) -> Iterator[Shop]:
    with secure_shop(database_url, clock) as server:
        assert server.server is not None
        shop = Shop(server, KeyRepository(server.server.engine))
        with shop.client(Role.ADMIN, exposure=Exposure.EXACT) as admin:
            admin.upsert_locations(
                [store(AMS, position=LatLng(latitude=52.37, longitude=4.89)), warehouse(WH)]
            )
            admin.apply_stock_updates(
                [update(AMS, sku, count, NOW) for sku, count in COUNTS.items()]
                + [update(WH, sku, count, NOW) for sku, count in COUNTS.items()]
            )
        yield shop


# Two skus in LIMITED (1 and 2 units) and two in IN_STOCK (7 and 13), as in the finding.
COUNTS = {"ONE": 1, "TWO": 2, "SEVEN": 7, "THIRTEEN": 13, "FIFTY": 50}


@pytest.fixture
def banded(shop: Shop) -> Iterator[Client]:
    with shop.client() as client:
        yield client


@pytest.fixture
def exact(shop: Shop) -> Iterator[Client]:
    with shop.client(exposure=Exposure.EXACT) as client:
        yield client


# -- finding 1: confidence gave the count away


def test_banded_confidence_is_the_same_for_every_count_in_a_band(banded: Client) -> None:
    """Confidences 0.75, 0.833, 0.937 and 0.964 were ATS 1, 2, 7 and 13."""
    by_sku = {sku: banded.get_availability(sku, [AMS])[0] for sku in COUNTS}
    assert {sku: a.confidence for sku, a in by_sku.items()} == {
        "ONE": 0.75, "TWO": 0.75, "SEVEN": 0.875, "THIRTEEN": 0.875, "FIFTY": 0.875,
    }  # fmt: skip
    batch = banded.batch_get_availability([(sku, AMS) for sku in COUNTS])
    assert [a.confidence for a in batch] == [by_sku[sku].confidence for sku in COUNTS]
    found = banded.search_nearby(cart({"ONE": 1, "TWO": 1, "SEVEN": 1, "THIRTEEN": 1}), DAM)
    [near] = found.locations
    assert [line.confidence for line in near.lines] == [0.75, 0.75, 0.875, 0.875]
    assert [line.confidence for line in found.ship.lines] == [0.75, 0.75, 0.875, 0.875]


def test_banded_confidence_falls_with_age_alone(shop: Shop, banded: Client) -> None:
    """Half the budget old: freshness 0.75, times the band's depth."""
    half = NOW - timedelta(hours=12)
    with shop.client(Role.FEED, exposure=Exposure.EXACT) as feeder:
        feeder.apply_stock_updates([update(AMS, "OLD-A", 4, half), update(AMS, "OLD-B", 40, half)])
    confidences = [banded.get_availability(sku, [AMS])[0].confidence for sku in ("OLD-A", "OLD-B")]
    assert confidences == [round(0.75 * 0.875, 3)] * 2


def test_exact_callers_keep_the_depth_of_the_count(exact: Client) -> None:
    answers = [exact.get_availability(sku, [AMS], exposure=Exposure.EXACT)[0] for sku in COUNTS]
    assert [a.confidence for a in answers] == [0.75, 0.833, 0.938, 0.964, 0.99]
    assert [a.available_to_sell for a in answers] == list(COUNTS.values())


def test_watch_events_carry_the_bands_confidence(
    shop: Shop, banded: Client, clock: FixedClock
) -> None:
    watch = banded.watch_availability([("ONE", AMS), ("TWO", AMS)], heartbeat_seconds=300)
    events: queue.Queue[WatchAvailabilityResponse] = queue.Queue()
    threading.Thread(target=lambda: [events.put(m) for m in watch], daemon=True).start()
    try:
        snapshot = events.get(timeout=10)
        assert snapshot.kind == WatchEventKind.SNAPSHOT
        assert [a.confidence for a in snapshot.availabilities] == [0.75, 0.75]
        clock.now = NOW + timedelta(minutes=1)
        with shop.client(Role.FEED, exposure=Exposure.EXACT) as feeder:
            feeder.apply_stock_updates(
                [update(AMS, "ONE", 7, clock.now), update(AMS, "TWO", 13, clock.now)]
            )
        change = events.get(timeout=10)
    finally:
        watch.cancel()
    assert change.kind == WatchEventKind.CHANGE
    assert [StockStatus(a.status).name for a in change.availabilities] == ["IN_STOCK"] * 2
    assert [a.confidence for a in change.availabilities] == [0.875, 0.875]


# -- finding 2: a refused hold stated the count


def test_a_banded_keys_refused_hold_states_no_count(banded: Client) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        banded.create_reservation(AMS, {"SEVEN": 9, "ONE": 1})
    error = caught.value
    assert error.reason == "INSUFFICIENT_STOCK"
    assert "SEVEN (requested 9, not available)" in error.message
    assert [(v.subject, v.description) for v in error.precondition_violations] == [
        ("SEVEN", "requested 9, not available")
    ]
    assert "7" not in error.message


def test_an_exact_keys_refused_hold_states_the_count(exact: Client) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        exact.create_reservation(AMS, {"SEVEN": 1000})
    assert "SEVEN (requested 1000, available 7)" in caught.value.message
    assert [v.description for v in caught.value.precondition_violations] == [
        "requested 1000, available 7"
    ]


def test_with_a_high_cap_a_banded_key_asking_1000_learns_only_that_it_is_short(
    database_url: str, clock: FixedClock
) -> None:
    """The finding as reported: a reserve key with banded exposure asked for 1,000."""
    with secure_shop(database_url, clock, banded_max_quantity=1000) as server:
        assert server.server is not None
        shop = Shop(server, KeyRepository(server.server.engine))
        with shop.client(Role.ADMIN, exposure=Exposure.EXACT) as admin:
            admin.upsert_locations([store(AMS)])
            admin.apply_stock_updates([update(AMS, "SEVEN", 7, NOW)])
        with shop.client() as banded, pytest.raises(FailedPreconditionError) as caught:
            banded.create_reservation(AMS, {"SEVEN": 1000})
    assert (
        caught.value.message
        == "not enough stock at NL-AMS-01: SEVEN (requested 1000, not available)"
    )
    assert [v.description for v in caught.value.precondition_violations] == [
        "requested 1000, not available"
    ]


# -- finding 3: the quantity asked as a probe


def test_a_banded_key_may_not_ask_past_the_cap_on_any_path(shop: Shop, banded: Client) -> None:
    too_many = CAP + 1
    calls = {
        "SearchNearby": lambda: banded.search_nearby(cart({"ONE": 1, "SEVEN": too_many}), DAM),
        "GetFulfillmentOptions": lambda: banded.get_fulfillment_options(
            cart({"ONE": 1, "SEVEN": too_many}), DAM
        ),
        "CreateReservation": lambda: banded.create_reservation(AMS, {"ONE": 1, "SEVEN": too_many}),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidArgumentError) as caught:
            call()
        assert [(v.field, v.description) for v in caught.value.field_violations] == [
            (
                "lines[1].quantity",
                f"must be at most {CAP} for a key with banded exposure"
                " (it may not learn counts beyond that)",
            )
        ], name
    # At the cap itself, every path answers.
    assert banded.search_nearby(cart({"THIRTEEN": CAP}), DAM).locations[0].lines[0].fulfillable
    assert banded.get_fulfillment_options(cart({"THIRTEEN": CAP}), DAM).options
    assert banded.create_reservation(AMS, {"THIRTEEN": CAP}).holds_stock


def test_an_exact_key_may_ask_for_any_quantity(exact: Client) -> None:
    found = exact.search_nearby(cart({"FIFTY": 40}), DAM, exposure=Exposure.EXACT)
    assert found.locations[0].lines[0].fulfillable
    assert exact.get_fulfillment_options(cart({"FIFTY": 40}), DAM).options
    assert exact.create_reservation(AMS, {"FIFTY": 40}).holds_stock


def test_a_binary_search_of_quantities_learns_no_more_than_the_cap(banded: Client) -> None:
    """The finding recovered 13 and 7 by bisecting the quantity. Now every quantity a banded
    key may ask for gets the same answers at 13 units as at 50, and past the cap none."""
    for quantity in range(1, CAP + 1):
        thirteen = banded.search_nearby(cart({"THIRTEEN": quantity}), DAM)
        fifty = banded.search_nearby(cart({"FIFTY": quantity}), DAM)
        for answer in (thirteen, fifty):
            for line in [*answer.locations[0].lines, *answer.ship.lines]:
                line.sku = "X"
        assert thirteen == fifty, quantity
        options = [
            banded.get_fulfillment_options(cart({sku: quantity}), DAM)
            for sku in ("THIRTEEN", "FIFTY")
        ]
        for answer in options:
            for option in answer.options:
                for line in [*option.pickup_lines, *option.ship_lines]:
                    line.sku = "X"
        assert options[0] == options[1], quantity
    with pytest.raises(InvalidArgumentError):
        banded.search_nearby(cart({"THIRTEEN": CAP + 1}), DAM)


def test_the_cap_is_a_server_option(database_url: str, clock: FixedClock) -> None:
    with secure_shop(database_url, clock, banded_max_quantity=3) as server:
        assert server.server is not None
        shop = Shop(server, KeyRepository(server.server.engine))
        with shop.client(Role.ADMIN, exposure=Exposure.EXACT) as admin:
            admin.upsert_locations([store(AMS)])
            admin.apply_stock_updates([update(AMS, "SEVEN", 7, NOW)])
        with shop.client() as banded:
            assert banded.search_nearby(cart({"SEVEN": 3}), DAM).locations
            with pytest.raises(InvalidArgumentError) as caught:
                banded.search_nearby(cart({"SEVEN": 4}), DAM)
    assert caught.value.field_violations[0].field == "lines[0].quantity"
    assert "at most 3" in caught.value.field_violations[0].description


def test_the_serve_command_takes_the_cap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from omnistock.server import app
    from omnistock.server.cli import main

    seen: list[ServerConfig] = []

    async def serve(config: ServerConfig) -> None:
        seen.append(config)

    monkeypatch.setattr(app, "serve", serve)
    monkeypatch.chdir(tmp_path)  # the default database, made by serve's migrations
    assert main(["serve", "--banded-max-quantity", "25"]) == 0
    monkeypatch.setenv("OMNISTOCK_BANDED_MAX_QUANTITY", "6")
    assert main(["serve"]) == 0
    assert [config.banded_max_quantity for config in seen] == [25, 6]
    assert main(["serve", "--banded-max-quantity", "0"]) == 2
    monkeypatch.setenv("OMNISTOCK_BANDED_MAX_QUANTITY", "many")
    assert main(["serve"]) == 2
    # The server's own log lines (the schema check) may come first; the errors are these.
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("omnistock:")]
    assert err == [
        "omnistock: --banded-max-quantity must be at least 1",
        "omnistock: $OMNISTOCK_BANDED_MAX_QUANTITY must be a whole number of at least 1, got 'many'",
    ]


# -- the read path's caches


def test_exact_and_banded_callers_never_share_a_cached_answer(
    banded: Client, exact: Client
) -> None:
    """The same question within the same minute, in both orders: each caller gets its own
    exposure's answer, whichever asked first."""
    for first, second in ((exact, banded), (banded, exact)):
        for sku in ("SEVEN", "THIRTEEN"):
            answers = {}
            for client in (first, second):
                exposure = Exposure.EXACT if client is exact else Exposure.BANDED
                [got] = client.get_availability(sku, [AMS], exposure=exposure)
                found = client.search_nearby(cart({sku: 2}), DAM, exposure=exposure)
                answers[exposure] = (got, found.locations[0].lines[0], found.ship.lines[0])
            for answer in answers[Exposure.BANDED]:
                assert not answer.HasField("available_to_sell")
                assert answer.confidence == 0.875
            for answer in answers[Exposure.EXACT]:
                assert answer.available_to_sell == COUNTS[sku]
                assert answer.confidence > 0.875


def test_holds_stack_so_a_reserve_key_counts_in_steps_of_the_cap(banded: Client) -> None:
    """docs/security.md says so: the second hold of 10 needs 20 units."""
    assert banded.create_reservation(AMS, {"THIRTEEN": CAP}).holds_stock
    with pytest.raises(FailedPreconditionError) as caught:
        banded.create_reservation(AMS, {"THIRTEEN": CAP})
    assert [v.description for v in caught.value.precondition_violations] == [
        f"requested {CAP}, not available"
    ]
    assert banded.create_reservation(AMS, {"FIFTY": CAP}).holds_stock
    assert banded.create_reservation(AMS, {"FIFTY": CAP}).holds_stock
