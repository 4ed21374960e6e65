"""AsyncClient: the same answers as Client, on asyncio, against a seeded server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from factories import update
from omnistock.client import (
    AsyncClient,
    Exposure,
    FailedPreconditionError,
    NotFoundError,
    ReservationState,
    WatchEventKind,
    cart,
    origin,
)
from omnistock.client.testing import LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def test_reads_pages_and_errors(server: LocalServer) -> None:
    async def main() -> None:
        async with AsyncClient(server.target) as client:
            [answer] = await client.get_availability(
                "PHONE-1", ["NL-AMS-01"], exposure=Exposure.EXACT
            )
            assert answer.available_to_sell == 5
            ids = [loc.id async for loc in client.list_locations(page_size=1)]
            assert ids == ["NL-AMS-01", "NL-RTM-01", "NL-UTR-01", "NL-WH-01"]
            nearby = await client.search_nearby(
                cart({"PHONE-1": 1}), origin(latitude=52.37, longitude=4.89)
            )
            assert nearby.locations[0].location_id == "NL-AMS-01"
            with pytest.raises(NotFoundError):
                await client.get_location("NL-NOPE-01")

    asyncio.run(main())


def test_reservations(server: LocalServer) -> None:
    async def main() -> None:
        async with AsyncClient(server.target) as client:
            hold = await client.create_reservation("NL-UTR-01", {"CASE-1": 2})
            assert ReservationState(hold.state) is ReservationState.ACTIVE
            with pytest.raises(FailedPreconditionError):
                await client.create_reservation("NL-UTR-01", {"CASE-1": 2})
            released = await client.release_reservation(hold.reservation_id)
            assert ReservationState(released.state) is ReservationState.RELEASED
            states = [r.state async for r in client.list_reservations(location_id="NL-UTR-01")]
            assert states == [ReservationState.RELEASED]

    asyncio.run(main())


def test_async_watch_sees_a_change(server: LocalServer) -> None:
    async def main() -> list[int]:
        seen = []
        async with AsyncClient(server.target) as client:
            watch = client.watch_availability([("CHARGER-1", "NL-RTM-01")], exposure=Exposure.EXACT)
            async with watch:
                async for event in watch:
                    seen.append(event.availabilities[0].available_to_sell)
                    if WatchEventKind(event.kind) is WatchEventKind.SNAPSHOT:
                        await client.apply_stock_updates(
                            [update("NL-RTM-01", "CHARGER-1", 7, datetime.now(UTC))]
                        )
                    else:
                        break
        return seen

    assert asyncio.run(main()) == [2, 7]
