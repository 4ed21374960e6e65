"""The feed ordering rule, field by field (DESIGN.md "Order", docs/feeds.md).

Any order of the same absolute updates and snapshots ends in the same state, every
field included: ties of time and sequence, sequences that disagree with time, updates
that carry no safety stock, snapshots, and deltas stamped at a snapshot's as_of. A
model of the rule, written here apart from the store, says what that state is.
Relative adjustments are not order-free; the store follows the model's account of
them in whatever order they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnistock.server.domain.feed_order import (
    MAX_QUANTITY,
    DeltaRow,
    UpdateKey,
    on_hand_in_range,
    snapshot_zero_key,
    update_key,
)
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.feeds import DeltaOutcome, FeedWriter
from omnistock.server.store.locations import LocationRepository
from sqlalchemy import Engine, text

LOCATIONS = ["L1", "L2"]
SKUS = ["A", "B", "C"]
NOW_US = 1_795_000_000_000_000
# Few distinct times and sequences, so that ties are common.
TIMES = st.integers(0, 4).map(lambda t: NOW_US + t)
SEQUENCES = st.none() | st.integers(0, 3)
QUANTITIES = st.integers(-3, 9)
SAFETY = st.none() | st.integers(0, 4)


@dataclass(frozen=True)
class Update:
    location_id: str
    sku: str
    quantity: int
    at_us: int
    sequence: int | None
    safety_stock: int | None
    relative: bool = False

    def row(self) -> DeltaRow:
        return DeltaRow(
            self.location_id,
            self.sku,
            self.quantity,
            self.relative,
            self.at_us,
            self.safety_stock,
            self.sequence,
        )


@dataclass(frozen=True)
class Snapshot:
    location_id: str
    at_us: int
    records: tuple[tuple[str, int, int | None], ...]


Event = Update | Snapshot


@st.composite
def updates(draw: st.DrawFn, *, relative: bool = False) -> Update:
    is_relative = relative and draw(st.booleans())
    quantity = (
        draw(st.sampled_from([-MAX_QUANTITY, -2, -1, 1, 2, MAX_QUANTITY]))
        if is_relative
        else draw(st.sampled_from([-MAX_QUANTITY, MAX_QUANTITY]) | QUANTITIES)
    )
    return Update(
        draw(st.sampled_from(LOCATIONS)),
        draw(st.sampled_from(SKUS)),
        quantity,
        draw(TIMES),
        draw(SEQUENCES),
        draw(SAFETY),
        is_relative,
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    # Repeats of a sku allowed: the greatest record sets it.
    records = draw(st.lists(st.tuples(st.sampled_from(SKUS), QUANTITIES, SAFETY), max_size=4))
    return Snapshot(draw(st.sampled_from(LOCATIONS)), draw(TIMES), tuple(records))


def feed_events(*, relative: bool = False) -> st.SearchStrategy[list[Event]]:
    return st.lists(updates(relative=relative) | snapshots(), min_size=1, max_size=12)


# -- the model: the rule as DESIGN.md states it, on plain dicts


@dataclass
class Field:
    value: int
    key: UpdateKey


@dataclass
class Record:
    on_hand: Field
    safety: Field | None = None


@dataclass
class Model:
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)

    def update(self, u: Update) -> DeltaOutcome:
        key = update_key(
            u.at_us, u.sequence, u.quantity, relative=u.relative, safety_stock=u.safety_stock
        )
        pair = (u.location_id, u.sku)
        watermark = self.watermarks.get(u.location_id)
        zero = None if watermark is None else snapshot_zero_key(watermark)
        record = self.records.get(pair)
        if record is None:
            if zero is not None and key < zero:
                # Older than the location's newest snapshot: the zero it implied.
                record = self.records[pair] = Record(Field(0, zero))
                if u.safety_stock is None:
                    return DeltaOutcome.STALE
                record.safety = Field(u.safety_stock, key)
                return DeltaOutcome.APPLIED
            safety = None if u.safety_stock is None else Field(u.safety_stock, key)
            self.records[pair] = Record(Field(u.quantity, key), safety)
            return DeltaOutcome.APPLIED
        on_hand_newer = key > record.on_hand.key
        safety_newer = u.safety_stock is not None and (
            record.safety is None or key > record.safety.key
        )
        new_on_hand = record.on_hand.value + u.quantity if u.relative else u.quantity
        if on_hand_newer and not on_hand_in_range(new_on_hand):
            return DeltaOutcome.OUT_OF_RANGE
        if on_hand_newer:
            record.on_hand = Field(new_on_hand, key)
        if safety_newer:
            assert u.safety_stock is not None
            record.safety = Field(u.safety_stock, key)
        return DeltaOutcome.APPLIED if on_hand_newer or safety_newer else DeltaOutcome.STALE

    def snapshot(self, s: Snapshot) -> None:
        for sku, on_hand, safety in s.records:
            self.update(Update(s.location_id, sku, on_hand, s.at_us, None, safety))
        late = s.at_us < self.watermarks.get(s.location_id, s.at_us)
        self.watermarks[s.location_id] = max(s.at_us, self.watermarks.get(s.location_id, s.at_us))
        if late:
            return
        zero = snapshot_zero_key(s.at_us)
        for (location_id, _), record in self.records.items():
            if location_id == s.location_id and record.on_hand.key < zero:
                record.on_hand = Field(0, zero)

    def state(self) -> set[tuple[object, ...]]:
        return {
            (
                location_id,
                sku,
                r.on_hand.value,
                r.on_hand.key.source_updated_at_us,
                r.on_hand.key.source_sequence,
                None if r.safety is None else r.safety.value,
                None if r.safety is None else r.safety.key.source_updated_at_us,
                None if r.safety is None else r.safety.key.source_sequence,
            )
            for (location_id, sku), r in self.records.items()
        }


# -- the store


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


def apply(engine: Engine, events: list[Event]) -> tuple[set[tuple[object, ...]], list[object]]:
    """Feed the events in this order to an empty store: its end state, and each update's
    outcome."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM stock"))
        connection.execute(text("DELETE FROM feed_status"))
    writer = FeedWriter(engine)
    outcomes: list[object] = []
    for event in events:
        if isinstance(event, Update):
            outcomes += writer.apply_deltas([event.row()], now_us=NOW_US)
        else:
            snapshot = writer.begin_snapshot(event.location_id, event.at_us, now_us=NOW_US)
            snapshot.add(list(event.records))
            snapshot.commit()
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT location_id, sku, on_hand, source_updated_at_us, source_sequence,"
                " safety_stock, safety_key FROM stock"
            )
        ).all()
    # Safety stock's time and sequence, from its packed key.
    rows = [
        (*row[:6], *((None, None) if row[6] is None else _time_and_sequence(bytes(row[6]))))
        for row in rows
    ]
    return {tuple(row) for row in rows}, outcomes


def _time_and_sequence(packed: bytes) -> tuple[int, int | None]:
    key = UpdateKey.unpacked(packed)
    return key.source_updated_at_us, key.source_sequence


def model(events: list[Event]) -> tuple[set[tuple[object, ...]], list[object]]:
    m = Model()
    outcomes: list[object] = []
    for event in events:
        if isinstance(event, Update):
            outcomes.append(m.update(event))
        else:
            m.snapshot(event)
    return m.state(), outcomes


SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(events=feed_events(), data=st.data())
def test_any_order_of_the_same_updates_ends_in_the_same_state_every_field(
    engine: Engine, events: list[Event], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    end_state, _ = apply(engine, shuffled)
    assert end_state == apply(engine, events)[0]
    assert end_state == model(events)[0]


@SETTINGS
@given(events=feed_events(relative=True))
def test_adjustments_apply_in_arrival_order_as_the_docs_say(
    engine: Engine, events: list[Event]
) -> None:
    # Relative adjustments are not order-free: in any arrival order, the store does
    # what the documented rule says for that order, out-of-range ones refused.
    assert apply(engine, events) == model(events)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=feed_events())
def test_replaying_every_update_changes_nothing(engine: Engine, events: list[Event]) -> None:
    assert apply(engine, events + events)[0] == apply(engine, events)[0]


def state_of(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("SELECT sku, on_hand, safety_stock FROM stock ORDER BY sku")
            )
        ]


def test_safety_stock_does_not_depend_on_arrival_order(engine: Engine) -> None:
    # The issue's own example: (t1, on_hand 10, safety 5) and (t2, on_hand 8, none).
    first = Update("L1", "A", 10, NOW_US + 1, None, 5)
    second = Update("L1", "A", 8, NOW_US + 2, None, None)
    apply(engine, [first, second])
    assert state_of(engine) == [("A", 8, 5)]
    apply(engine, [second, first])
    assert state_of(engine) == [("A", 8, 5)]


def test_two_updates_with_the_same_time_have_one_winner_whichever_arrives_first(
    engine: Engine,
) -> None:
    a = Update("L1", "A", 4, NOW_US, 7, 1)
    b = Update("L1", "A", 6, NOW_US, 7, None)
    apply(engine, [a, b])
    in_one_order = state_of(engine)
    apply(engine, [b, a])
    # The larger quantity wins the tie for on_hand; only a carries a safety stock.
    assert state_of(engine) == in_one_order == [("A", 6, 1)]


def test_a_delta_stamped_at_a_snapshots_as_of_beats_the_zero_it_implies(engine: Engine) -> None:
    snapshot = Snapshot("L1", NOW_US, (("B", 3, None),))
    delta = Update("L1", "A", 2, NOW_US, None, None)
    for events in ([snapshot, delta], [delta, snapshot]):
        apply(engine, events)
        assert state_of(engine) == [("A", 2, None), ("B", 3, None)]


def test_sequence_orders_updates_of_the_same_time_only(engine: Engine) -> None:
    # Not transitive before: A (seq 1, t3), B (no seq, t2), C (seq 2, t1). Time first now.
    a = Update("L1", "A", 1, NOW_US + 3, 1, None)
    b = Update("L1", "A", 2, NOW_US + 2, None, None)
    c = Update("L1", "A", 3, NOW_US + 1, 2, None)
    for events in ([a, b, c], [c, b, a], [b, c, a]):
        apply(engine, events)
        assert state_of(engine) == [("A", 1, None)]
