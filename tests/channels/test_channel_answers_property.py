"""For random stock, protections, incoming lines and pre-order holds, the read model's
channel answer (kept totals, invalidated by the change bus) equals the domain's
channel_answer applied to rows read straight from the database, on SQLite and
PostgreSQL, before and after a second round of writes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from channel_setup import Channels, incoming, pre_order
from conftest import NOW, FixedClock, _postgres_test_url, _reset_postgres
from factories import store, update, warehouse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from omnistock.client import Capabilities, Client
from omnistock.server.domain.channels import (
    Channel,
    ChannelAnswer,
    ChannelMethod,
    LocationGroup,
    channel_answer,
    contribution,
    counting_incoming,
    held_incoming,
    incoming_line,
    resolve_group,
    serves,
)
from omnistock.server.domain.stock import Exposure, StockRecord
from omnistock.server.domain.timeutil import from_micros, to_micros
from omnistock.server.service.changes import Changes
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.locations import LocationRepository
from omnistock.server.store.tables import incoming_lines_table as it
from omnistock.server.store.tables import reservation_lines_table as rl
from omnistock.server.store.tables import reservations_table as rt
from omnistock.server.store.tables import stock_table as st_
from omnistock.server.testing import InProcessServer
from omnistock.v1 import channel_pb2
from sqlalchemy import Engine, select

PROTO_METHOD = {
    ChannelMethod.SHIP: channel_pb2.CHANNEL_METHOD_SHIP,
    ChannelMethod.PICKUP: channel_pb2.CHANNEL_METHOD_PICKUP,
}
PLACES = ["W1", "W2", "S1", "S2", "S3", "S4"]


@dataclass
class World:
    server: InProcessServer
    client: Client
    channels: Channels
    clock: FixedClock
    numbers: Iterator[int]

    @property
    def engine(self) -> Engine:
        assert self.server.server is not None
        return self.server.server.engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('property') / 'omnistock.db'}"
    else:
        if not request.getfixturevalue("postgres_url"):
            pytest.skip("PostgreSQL not configured")
        url = _postgres_test_url()
        _reset_postgres(url)
    clock = FixedClock()
    with InProcessServer(database_url=url, clock=clock) as server, Client(server.target) as client:
        client.upsert_locations(
            [
                warehouse("W1", time_zone="UTC"),
                warehouse("W2", time_zone="America/New_York"),
                store(
                    "S1", time_zone="UTC", capabilities=Capabilities(pickup=True, ship_from=True)
                ),
                store("S2", capabilities=Capabilities(pickup=True)),
                store("S3", time_zone="Asia/Tokyo", capabilities=Capabilities(ship_from=True)),
                store("S4", active=False, capabilities=Capabilities(pickup=True, ship_from=True)),
            ]
        )
        channels = Channels(server.target)
        yield World(server, client, channels, clock, itertools.count())
        channels.close()


@dataclass(frozen=True)
class Round:
    stock: dict[str, tuple[int, int, int]]  # location -> (on_hand, safety, minutes old)
    lines: list[tuple[str, int, int]]  # (location, quantity, days from today)
    holds: list[tuple[str, int, int]]  # (location, quantity, minutes until it lapses)


def rounds() -> st.SearchStrategy[Round]:
    places = st.sampled_from(PLACES)
    return st.builds(
        Round,
        stock=st.dictionaries(
            places,
            st.tuples(
                st.integers(-3, 30), st.integers(0, 3), st.sampled_from([1, 60, 1_400, 2_000])
            ),
        ),
        lines=st.lists(st.tuples(places, st.integers(1, 20), st.integers(-2, 20)), max_size=4),
        holds=st.lists(st.tuples(places, st.integers(1, 10), st.integers(-30, 90)), max_size=3),
    )


@dataclass(frozen=True)
class Example:
    members: frozenset[str]
    protection: dict[str, int]
    default_protection: int
    sells_incoming: bool
    method: ChannelMethod
    requested: int
    first: Round
    second: Round


def examples() -> st.SearchStrategy[Example]:
    return st.builds(
        Example,
        members=st.frozensets(st.sampled_from(PLACES), min_size=1),
        protection=st.dictionaries(st.sampled_from(PLACES), st.integers(0, 5)),
        default_protection=st.integers(0, 3),
        sells_incoming=st.booleans(),
        method=st.sampled_from(list(ChannelMethod)),
        requested=st.integers(1, 40),
        first=rounds(),
        second=rounds(),
    )


def write(world: World, sku: str, n: int, step: int, example_round: Round) -> None:
    at = world.clock.now
    updates = [
        update(loc, sku, on_hand, at - timedelta(minutes=old) + timedelta(seconds=step),
               safety_stock=safety)
        for loc, (on_hand, safety, old) in sorted(example_round.stock.items())
    ]  # fmt: skip
    if updates:
        world.client.apply_stock_updates(updates)
    for i, (loc, quantity, days) in enumerate(example_round.lines):
        due = at.date() + timedelta(days=days)
        incoming(world.server, loc, sku, f"L{step}-{i}", quantity, due)
    for i, (loc, quantity, minutes) in enumerate(example_round.holds):
        lapses = at + timedelta(minutes=minutes)
        pre_order(world.server, f"h{n}-{step}-{i}", loc, sku, quantity, lapses)


def straight_from_the_database(
    engine: Engine, channel_id: str, sku: str, method: ChannelMethod, requested: int,
    exposure_: Exposure, now: datetime,
) -> ChannelAnswer:  # fmt: skip
    """The domain's answer over rows read here, with no cache between."""
    repo = ChannelRepository(engine)
    channel = repo.channels([channel_id])[channel_id]
    members = resolve_group(channel.group_id, repo.all_groups())
    locations = {loc.id: loc for loc in LocationRepository(engine).get_all()}
    serving = {i: locations[i] for i in members if i in locations and serves(locations[i], method)}
    with engine.connect() as connection:
        rows = connection.execute(select(st_).where(st_.c.sku == sku)).all()
        lines = connection.execute(select(it).where(it.c.sku == sku, it.c.quantity > 0)).all()
        holds = connection.execute(
            select(rl.c.location_id, rl.c.incoming_quantity, rt.c.expires_at_us)
            .join(rt, rt.c.id == rl.c.reservation_id)
            .where(rl.c.sku == sku, rt.c.state == "ACTIVE")
        ).all()
    contributions = [
        contribution(
            serving[row.location_id],
            StockRecord(
                row.location_id, sku, row.on_hand, row.reserved, row.safety_stock,
                from_micros(row.source_updated_at_us), row.source_sequence,
            ),
            channel.protection_at(row.location_id),
            now,
        )
        for row in rows
        if row.location_id in serving
    ]  # fmt: skip
    due = counting_incoming(
        [
            incoming_line(date.fromisoformat(line.expected_date), line.quantity,
                          serving[line.location_id].time_zone)
            for line in lines
            if line.location_id in serving
        ],
        now,
    )  # fmt: skip
    held, held_until = held_incoming(
        [(q, from_micros(e)) for loc, q, e in holds if loc in serving], now
    )
    return channel_answer(
        channel, contributions, incoming=due, incoming_held=held, requested=requested,
        now=now, today=now.date(), exposure=exposure_, held_until=held_until,
    )  # fmt: skip


def same(answer: channel_pb2.ChannelAvailability, expected: ChannelAnswer) -> None:
    assert answer.status == int(expected.status)
    assert answer.confidence == pytest.approx(expected.confidence)
    since = expected.available_from
    assert answer.available_from == ("" if since is None else since.isoformat())
    as_of = expected.as_of
    assert answer.HasField("as_of") == (as_of is not None)
    if as_of is not None:
        assert answer.as_of.ToMicroseconds() == to_micros(as_of)
    until = expected.valid_until
    assert answer.HasField("valid_until") == (until is not None)
    if until is not None:
        assert answer.valid_until.ToMicroseconds() == to_micros(until)
    if expected.exposure is Exposure.EXACT:
        assert answer.available_to_fulfil == expected.available_to_fulfil
        assert answer.HasField("available_to_order") == (expected.available_to_order is not None)
        assert answer.available_to_order == (expected.available_to_order or 0)
        assert [(q.location_id, q.quantity) for q in answer.locations] == list(expected.breakdown)
        assert answer.contributing_location_count == expected.contributing_count
    else:
        assert not answer.HasField("available_to_fulfil")


@settings(
    max_examples=20,
    deadline=None,
    # Each example writes through a server: shrinking would take minutes.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(example=examples())
def test_the_read_models_channel_answer_is_the_domains_over_the_stored_rows(
    world: World, example: Example
) -> None:
    n = next(world.numbers)
    sku, channel_id, group_id = f"P{n}", f"c{n}", f"g{n}"
    assert world.server.server is not None
    repo = ChannelRepository(world.engine)
    repo.upsert_groups([LocationGroup(group_id, "G", example.members)], now=NOW)
    repo.upsert_channels(
        [
            Channel(
                channel_id, "C", group_id, protection=example.protection,
                default_protection=example.default_protection,
                sells_incoming=example.sells_incoming, methods=frozenset(ChannelMethod),
            )
        ],
        now=NOW,
    )  # fmt: skip
    world.server.server.changes.publish(Changes(channels=True))
    # A stale record in the group, so that the sku is known there.
    known_at = min(example.members)
    world.client.apply_stock_updates([update(known_at, sku, 1, NOW - timedelta(days=9))])
    for step, example_round in enumerate((example.first, example.second)):
        write(world, sku, n, step, example_round)
        for exact in (True, False):
            requested = example.requested if exact else min(example.requested, 10)
            got = world.channels.get(
                sku,
                channel_id,
                method=PROTO_METHOD[example.method],
                quantity=requested,
                exact=exact,
            )
            expected = straight_from_the_database(
                world.engine, channel_id, sku, example.method, requested,
                Exposure.EXACT if exact else Exposure.BANDED, world.clock.now,
            )  # fmt: skip
            same(got, expected)
    # Time alone: a later read (no write) agrees too.
    world.clock.now = world.clock.now + timedelta(minutes=45)
    try:
        got = world.channels.get(sku, channel_id, method=PROTO_METHOD[example.method], exact=True)
        expected = straight_from_the_database(
            world.engine, channel_id, sku, example.method, 1, Exposure.EXACT, world.clock.now
        )
        same(got, expected)
    finally:
        world.clock.now = NOW
