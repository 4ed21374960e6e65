"""No oversell: 200 concurrent shoppers race for the last 20 units of one record through
two server processes sharing one database, and exactly 20 units are held."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from factories import store, update
from omnistock.client import (
    ApiError,
    Client,
    Exposure,
    FailedPreconditionError,
    ReservationMethod,
    ReservationState,
)
from processes import serving

SHOPPERS = 200
UNITS = 20


@pytest.fixture
def two_servers(database_url: str) -> Iterator[list[str]]:
    with serving(database_url, 2) as targets:
        yield targets


def test_two_processes_never_oversell_the_last_units(two_servers: list[str]) -> None:
    now = datetime.now(UTC)
    with Client(two_servers[0]) as client:
        client.upsert_locations([store("NL-AMS-01")])
        client.apply_stock_updates(
            [update("NL-AMS-01", "LAST-UNITS", UNITS, now - timedelta(minutes=1))]
        )

    start = threading.Barrier(SHOPPERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def shop(i: int) -> None:
        with Client(two_servers[i % 2], timeout=60) as client:
            client.get_location("NL-AMS-01")  # connect before the race starts
            start.wait()
            try:
                client.create_reservation(
                    "NL-AMS-01", {"LAST-UNITS": 1}, method=ReservationMethod.CHECKOUT
                )
                outcome = "held"
            except FailedPreconditionError as error:
                outcome = error.reason
            except ApiError as error:  # anything else is a failure of the test
                outcome = f"{error.code}: {error}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=shop, args=(i,)) for i in range(SHOPPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(outcomes) == {"held": UNITS, "INSUFFICIENT_STOCK": SHOPPERS - UNITS}
    for target in two_servers:
        with Client(target) as client:
            (answer,) = client.get_availability(
                "LAST-UNITS", ["NL-AMS-01"], exposure=Exposure.EXACT
            )
            assert (answer.reserved, answer.available_to_sell) == (UNITS, 0)
            held = list(client.list_reservations(state=ReservationState.ACTIVE))
            assert sum(r.lines[0].quantity for r in held) == UNITS
