"""Where a network hold is tried, and how much of each line it takes from incoming: the
rules of domain.channel_holds and domain.channel_options, on the domain alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from omnistock.server.domain.channel_holds import (
    LocationSupply,
    incoming_counts_until,
    local_today,
    plan_network_hold,
)
from omnistock.server.domain.channel_options import incoming_ship_to_store
from omnistock.server.domain.channels import ChannelMethod, Incoming
from omnistock.server.domain.fulfillment import CartLine, Method
from omnistock.server.domain.locations import Capabilities, Location, LocationKind, WeeklyHours

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def place(id: str, kind: LocationKind = LocationKind.WAREHOUSE, **more: object) -> Location:
    return Location(
        id=id, kind=kind, name=id, time_zone="Europe/Amsterdam", latitude=0, longitude=0,
        capabilities=Capabilities(ship_from=True, pickup=True, ship_to_store=True), **more,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_tries_are_ranked_by_the_placement_rule_best_first() -> None:
    supplies = [
        LocationSupply(place("W1"), {"A": 3}),
        LocationSupply(place("W2"), {"A": 9}),
        LocationSupply(place("S1", LocationKind.STORE), {"A": 50}),
        LocationSupply(place("W3"), {"A": 1}),  # cannot cover 2
    ]
    plans = plan_network_hold(
        supplies, [CartLine("A", 2)], ChannelMethod.SHIP, sells_incoming=False
    )
    assert [p.location_id for p in plans] == ["W2", "W1", "S1"]
    assert all(not p.from_incoming for p in plans)


def test_incoming_is_taken_only_when_no_location_covers_from_stock() -> None:
    supplies = [
        LocationSupply(place("W1"), {"A": 2}, free_incoming={"A": 5}),
        LocationSupply(place("W2"), {"A": 1}, free_incoming={"A": 1}),
    ]
    lines = [CartLine("A", 4)]
    (plan,) = plan_network_hold(supplies, lines, ChannelMethod.SHIP, sells_incoming=True)
    assert (plan.location_id, dict(plan.from_incoming)) == ("W1", {"A": 2})
    assert plan_network_hold(supplies, lines, ChannelMethod.SHIP, sells_incoming=False) == []
    covered = plan_network_hold(
        supplies, [CartLine("A", 2)], ChannelMethod.SHIP, sells_incoming=True
    )
    assert [p.from_incoming for p in covered] == [{}]


def test_incoming_counts_until_the_end_of_its_date_at_the_location() -> None:
    amsterdam = place("W1")
    until = incoming_counts_until(date(2026, 12, 5), amsterdam)
    assert until == datetime(2026, 12, 5, 23, 0, tzinfo=UTC)  # midnight in Amsterdam
    late = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    assert local_today(amsterdam, late) == date(2026, 12, 3)


def test_ship_to_store_from_incoming_is_ready_at_the_opening_on_the_last_lines_date() -> None:
    hours = tuple(WeeklyHours(d, time(9), time(18)) for d in range(1, 8))
    store = place("S1", LocationKind.STORE, weekly_hours=hours)
    due = date(2026, 12, 9)
    incoming = {"A": [Incoming(due, 3, incoming_counts_until(due, store))]}
    option = incoming_ship_to_store(
        store, 1.5, [CartLine("A", 2)], {"A": 0}, incoming, {}, NOW, NOW.date()
    )
    assert option is not None and option.method is Method.SHIP_TO_STORE
    assert option.ready_by == datetime(2026, 12, 9, 8, 0, tzinfo=UTC)  # 09:00 in Amsterdam
    held = incoming_ship_to_store(
        store, 1.5, [CartLine("A", 2)], {"A": 0}, incoming, {"A": 2}, NOW, NOW.date()
    )
    assert held is None  # 3 due, 2 already held: 1 left
    in_stock = incoming_ship_to_store(
        store, 1.5, [CartLine("A", 2)], {"A": 2}, incoming, {}, NOW, NOW.date()
    )
    assert in_stock is None  # pickup does better
    assert timedelta(0) < option.complete_by - NOW
