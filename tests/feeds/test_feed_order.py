"""Any order of the same timestamped absolute updates and snapshots ends in the same state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.feeds import DeltaRow, FeedWriter
from omnistock.server.store.locations import LocationRepository
from sqlalchemy import Engine, text

LOCATIONS = ["L1", "L2"]
SKUS = ["A", "B", "C"]
NOW_US = 1_795_000_000_000_000


@dataclass(frozen=True)
class Update:
    location_id: str
    sku: str
    on_hand: int
    at_us: int
    sequence: int | None


@dataclass(frozen=True)
class Snapshot:
    location_id: str
    at_us: int
    records: tuple[tuple[str, int], ...]


@st.composite
def feed_events(draw: st.DrawFn) -> list[Update | Snapshot]:
    count = draw(st.integers(1, 12))
    # Distinct times: ties between different values have no defined winner.
    times = draw(st.lists(st.integers(0, 10_000), min_size=count, max_size=count, unique=True))
    events: list[Update | Snapshot] = []
    for at in times:
        location = draw(st.sampled_from(LOCATIONS))
        if draw(st.booleans()):
            skus = draw(st.lists(st.sampled_from(SKUS), unique=True, max_size=3))
            events.append(
                Snapshot(location, NOW_US + at, tuple((s, draw(st.integers(-2, 9))) for s in skus))
            )
        else:
            # Sequences, when used, rise with time, as a source's own counter does.
            sequence = at if draw(st.booleans()) else None
            events.append(
                Update(
                    location,
                    draw(st.sampled_from(SKUS)),
                    draw(st.integers(-2, 9)),
                    NOW_US + at,
                    sequence,
                )
            )
    return events


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    migrate(engine)
    LocationRepository(engine).upsert_many(
        [
            Location(
                id=i, kind=LocationKind.STORE, name=i, time_zone="UTC", latitude=0, longitude=0
            )
            for i in LOCATIONS
        ],
        now=NOW,
    )
    yield engine
    engine.dispose()


def apply(engine: Engine, events: list[Update | Snapshot]) -> set[tuple[object, ...]]:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM stock"))
        connection.execute(text("DELETE FROM feed_status"))
    writer = FeedWriter(engine)
    for event in events:
        if isinstance(event, Update):
            row = DeltaRow(
                event.location_id,
                event.sku,
                event.on_hand,
                False,
                event.at_us,
                None,
                event.sequence,
            )
            writer.apply_deltas([row], now_us=NOW_US)
        else:
            snapshot = writer.begin_snapshot(event.location_id, event.at_us, now_us=NOW_US)
            snapshot.add([(sku, qty, None) for sku, qty in event.records])
            snapshot.commit()
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT location_id, sku, on_hand, source_updated_at_us FROM stock")
        ).all()
    return {tuple(row) for row in rows}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=feed_events(), data=st.data())
def test_any_order_of_the_same_updates_ends_in_the_same_state(
    engine: Engine, events: list[Update | Snapshot], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    in_time_order = sorted(events, key=lambda e: e.at_us)
    assert apply(engine, shuffled) == apply(engine, in_time_order)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=feed_events())
def test_replaying_every_update_changes_nothing(
    engine: Engine, events: list[Update | Snapshot]
) -> None:
    assert apply(engine, events + events) == apply(engine, events)
