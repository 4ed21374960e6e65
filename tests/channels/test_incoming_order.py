"""Incoming supply follows the feed rules of stock: any order ends in the same state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from conftest import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.store import incoming
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.incoming import (
    IncomingStore,
    IncomingUpdate,
    OpenSupply,
    StoredIncoming,
)
from omnistock.server.store.locations import LocationRepository
from sqlalchemy import Engine, text

T0 = 1_795_000_000_000_000
DAY = date(2026, 12, 10)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    migrate(engine)
    LocationRepository(engine).upsert_many(
        [
            Location(id=i, kind=LocationKind.WAREHOUSE, name=i, time_zone="UTC", latitude=0, longitude=0)
            for i in ("W1", "W2")
        ],
        now=NOW,
    )  # fmt: skip
    yield engine
    engine.dispose()


updates = st.builds(
    IncomingUpdate,
    location_id=st.sampled_from(["W1", "W2"]),
    sku=st.sampled_from(["A", "B"]),
    line_id=st.sampled_from(["PO-1", "PO-2"]),
    quantity=st.integers(0, 5),
    expected=st.integers(0, 3).map(lambda d: DAY + timedelta(days=d)),
    source_updated_at_us=st.integers(0, 3).map(lambda t: T0 + t),
    source_sequence=st.none() | st.integers(0, 2),
)
snapshots = st.tuples(
    st.sampled_from(["W1", "W2"]),
    st.integers(0, 3).map(lambda t: T0 + t),
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["PO-1", "PO-2"]),
            st.integers(0, 5),
            st.integers(0, 3).map(lambda d: DAY + timedelta(days=d)),
        ),
        max_size=3,
        unique_by=lambda line: (line[0], line[1]),
    ),
)
events = st.lists(updates | snapshots, min_size=1, max_size=10)


def feed(engine: Engine, events: list[object]) -> set[tuple[object, ...]]:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM incoming_lines"))
        connection.execute(text("DELETE FROM incoming_watermarks"))
    store = IncomingStore(engine)
    for event in events:
        if isinstance(event, IncomingUpdate):
            store.apply([event], now_us=T0)
        else:
            location, as_of, lines = event  # type: ignore[misc]
            store.apply_snapshot(location, as_of, lines, now_us=T0)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT location_id, sku, line_id, quantity, expected_date FROM incoming_lines")
        )
        # A line at 0 reads the same as no line at all.
        return {tuple(row) for row in rows if row[3] > 0}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events, data=st.data())
def test_any_order_of_the_same_incoming_updates_ends_in_the_same_state(
    engine: Engine, events: list[object], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    assert feed(engine, shuffled) == feed(engine, events)
    assert feed(engine, events + events) == feed(engine, events)


def test_lines_for_the_same_pair_add_up_and_a_snapshot_drops_what_it_leaves_out(
    engine: Engine,
) -> None:
    store = IncomingStore(engine)
    store.apply(
        [
            IncomingUpdate("W1", "A", "PO-1", 5, DAY, T0),
            IncomingUpdate("W1", "A", "PO-2", 3, DAY + timedelta(days=2), T0),
        ],
        now_us=T0,
    )
    assert sum(line.quantity for line in store.lines_for("A")) == 8
    store.apply_snapshot("W1", T0 + 1, [("A", "PO-2", 4, DAY)], now_us=T0)
    assert store.lines_for("A") == [StoredIncoming("W1", "A", "PO-2", 4, DAY)]
    # An update older than that snapshot, for a line it left out, stays dropped.
    assert store.apply([IncomingUpdate("W1", "A", "PO-1", 9, DAY, T0)], now_us=T0) == [False]
    assert [line.line_id for line in store.lines_for("A")] == ["PO-2"]


def test_open_supply_adds_up_lines_per_location_and_date_for_many_skus_at_once(
    engine: Engine,
) -> None:
    store = IncomingStore(engine)
    later = DAY + timedelta(days=3)
    store.apply(
        [
            IncomingUpdate("W1", "A", "PO-1", 5, DAY, T0),
            IncomingUpdate("W1", "A", "PO-2", 3, DAY, T0),  # same place and day: adds up
            IncomingUpdate("W2", "A", "PO-3", 4, later, T0),
            IncomingUpdate("W1", "A", "PO-4", 0, DAY, T0),  # closed
            IncomingUpdate("W1", "A", "PO-5", 9, DAY - timedelta(days=5), T0),  # long past
            IncomingUpdate("W2", "B", "PO-1", 2, later, T0),
        ],
        now_us=T0,
    )
    assert store.open_supply(["A", "B", "C"], since=DAY - timedelta(days=1)) == {
        "A": [OpenSupply("W1", 8, DAY), OpenSupply("W2", 4, later)],
        "B": [OpenSupply("W2", 2, later)],
        "C": [],
    }


def test_open_supply_is_bounded_in_skus_and_in_rows_per_sku(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IncomingStore(engine)
    store.apply(
        [IncomingUpdate("W1", "A", f"PO-{d}", 1, DAY + timedelta(days=d), T0) for d in range(5)],
        now_us=T0,
    )
    monkeypatch.setattr(incoming, "MAX_SUPPLY_ROWS", 3)
    # The earliest dates are kept: they are what "available from" needs first.
    assert [s.expected for s in store.open_supply(["A"], since=DAY)["A"]] == [
        DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="at most"):
        store.open_supply([f"S{i}" for i in range(incoming.MAX_SUPPLY_SKUS + 1)], since=DAY)


def test_open_supply_reads_through_the_sku_index(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL plans a table this small by its size")
    stmt = incoming.open_supply_statement(["A", "B"], DAY)
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = " ".join(
            str(row) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        )
    assert "ix_incoming_lines_sku" in plan
