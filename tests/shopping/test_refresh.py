"""Searches from memory do not wait on the database when cached records reach their TTL:
they go on with them while one background refresh reads them again. A write (or a change
notice from another process) still sends the next search to the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import NOW, FixedClock
from factories import store
from omnistock.client import Client, LatLng
from omnistock.server.domain.fulfillment import CartLine, Method
from omnistock.server.domain.stock import Exposure
from omnistock.server.readmodel.queries import ReadModel
from omnistock.server.readmodel.stock import StockCache
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.origins import Origin
from omnistock.server.store import reads as reads_module
from omnistock.server.store.postcodes import PostcodeRepository
from omnistock.server.store.reads import StockReader
from omnistock.server.testing import InProcessServer

CART = [CartLine("PHONE", 1), CartLine("CASE", 1)]
DAM = Origin(latitude=52.3731, longitude=4.8926)
OPTIONS: dict[str, Any] = {
    "radius_km": 25.0, "limit": 10, "open_now": False, "method": Method.PICKUP,
    "require_all": False, "exposure": Exposure.BANDED,
}  # fmt: skip


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """The stock repository, counting the searches' reads of a sku's records."""

    def __init__(self, stock: Any) -> None:
        self._stock = stock
        self.reads = 0

    def records_for_sku(self, sku: str, location_ids: Any) -> Any:
        self.reads += 1
        return self._stock.records_for_sku(sku, location_ids)


class Pool:
    """The read model's database pool, run inline, counting the calls sent to it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return fn(*args, **kwargs)


def reads_over(
    server: InProcessServer, background: Callable[[Callable[[], None]], object] | None
) -> tuple[ReadModel, CountingReads, StockCache, Timer, Pool]:
    app = server.server
    assert app is not None
    timer = Timer()
    cache = StockCache(ttl=1.0, timer=timer)
    reads = CountingReads(app.stock_repo)
    shopping = ShoppingService(
        reads,  # type: ignore[arg-type]
        app.directory,
        PostcodeRepository(app.engine),
        clock=FixedClock(),
        cache=cache,
    )
    pool = Pool()
    model = ReadModel(
        availability=app.availability,
        shopping=shopping,
        directory=app.directory,
        cache=cache,
        run=pool,
        background=background,
    )
    return model, reads, cache, timer, pool


def search(model: ReadModel) -> Any:
    return asyncio.run(model.search_nearby(CART, DAM, **OPTIONS))


def load(client: Client) -> None:
    client.upsert_locations(
        [store("AMS-1", position=LatLng(latitude=52.379, longitude=4.900)),
         store("AMS-2", position=LatLng(latitude=52.339, longitude=4.872))]
    )  # fmt: skip
    client.import_snapshot("AMS-1", NOW - timedelta(minutes=5), [("PHONE", 3), ("CASE", 9)])
    client.import_snapshot("AMS-2", NOW - timedelta(minutes=5), [("PHONE", 8)])


def ids(result: Any) -> list[str]:
    return [answer.location.id for answer in result.locations]


def test_expired_records_serve_while_one_refresh_reads_them_again(
    server: InProcessServer, client: Client
) -> None:
    load(client)
    submitted: list[Callable[[], None]] = []
    model, reads, cache, timer, pool = reads_over(server, submitted.append)
    first = search(model)
    assert ids(first) == ["AMS-1", "AMS-2"] and reads.reads == 2 and pool.calls == 2

    timer.now = 1.5  # past the TTL
    again = search(model)
    assert ids(again) == ids(first) and pool.calls == 2  # answered from memory
    assert reads.reads == 2 and len(submitted) == 2  # one refresh a sku, none run yet
    search(model)
    assert len(submitted) == 2  # refreshes under way are not asked for again

    before = cache.peek_sku("PHONE")[0]
    timer.now = 2.0  # twice the TTL, and the refreshes not back: no longer used
    assert ids(search(model)) == ids(first)
    assert pool.calls == 4 and reads.reads == 4  # read again, on the pool
    for refresh in submitted:
        refresh()
    assert reads.reads == 6
    # Nothing changed: the same version, so every answer built on the records stands.
    after, due = cache.peek_sku("PHONE")
    assert before is not None and after is not None and not due
    assert after.version == before.version and after.records == before.records

    # A write drops the records: the next search must read them.
    cache.invalidate([("PHONE", "AMS-1")])
    search(model)
    assert pool.calls == 5


def test_without_a_background_runner_expired_records_send_the_search_to_the_database(
    server: InProcessServer, client: Client
) -> None:
    load(client)
    model, reads, _, timer, pool = reads_over(server, None)
    search(model)
    assert pool.calls == 2
    search(model)
    assert pool.calls == 2  # from memory
    timer.now = 1.5
    assert ids(search(model)) == ["AMS-1", "AMS-2"]
    assert pool.calls == 4 and reads.reads == 4


def built_records(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The location ids of the records the reader builds from rows, as it builds them."""
    built: list[str] = []
    make = reads_module.record_from_row

    def counting(row: Any) -> Any:
        built.append(row[0])
        return make(row)

    monkeypatch.setattr(reads_module, "record_from_row", counting)
    return built


def test_a_sku_read_again_builds_records_only_for_the_rows_that_changed(
    server: InProcessServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a sku's records again builds records only for rows that changed: the rest
    come back equal to what was read before without being decoded again, and a record
    with holds always comes back with its holds as they are now."""
    load(client)
    app = server.server
    assert app is not None
    built = built_records(monkeypatch)

    def read() -> dict[str, Any]:
        return {r.location_id: r for r in app.stock_repo.records_for_sku("PHONE", None)}

    first = read()
    assert sorted(built) == ["AMS-1", "AMS-2"]
    built.clear()
    assert read() == first and built == []

    client.import_snapshot("AMS-2", NOW - timedelta(minutes=1), [("PHONE", 5)])
    after_feed = read()
    assert built == ["AMS-2"] and after_feed["AMS-2"].on_hand == 5
    assert after_feed["AMS-1"] == first["AMS-1"]

    client.create_reservation("AMS-1", {"PHONE": 2})
    held = read()
    assert held["AMS-1"].reserved == 2 and [q for q, _ in held["AMS-1"].holds] == [2]
    client.create_reservation("AMS-1", {"PHONE": 1})
    assert [q for q, _ in read()["AMS-1"].holds] == [2, 1]
    built.clear()
    assert read()["AMS-2"] == after_feed["AMS-2"] and "AMS-2" not in built


def test_the_reader_remembers_a_bounded_number_of_rows(
    server: InProcessServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(client)  # PHONE at two stores, CASE at one
    app = server.server
    assert app is not None
    reader = StockReader(app.engine, remembered_rows=2)
    built = built_records(monkeypatch)
    try:
        phone = reader.records_for_sku("PHONE", None)
        reader.records_for_sku("CASE", None)  # 3 rows in all: PHONE's are let go
        built.clear()
        again = reader.records_for_sku("PHONE", None)  # and now CASE's
        assert sorted(r.on_hand for r in again) == sorted(r.on_hand for r in phone) == [3, 8]
        assert len(built) == 2  # PHONE's were forgotten: decoded again
        built.clear()
        assert reader.records_for_sku("PHONE", None) == again and built == []
        # Reads that find nothing to remember (unknown skus) take no memory.
        for n in range(100):
            assert reader.records_for_sku(f"NOPE-{n}", None) == []
        assert list(reader._last_read) == ["PHONE"]
    finally:
        reader.close()
