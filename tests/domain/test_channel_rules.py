"""The channel rules of DESIGN.md ("Channels"), one test each, on the domain alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from omnistock.server.domain.channels import (
    MAX_BREAKDOWN,
    Channel,
    ChannelAnswer,
    ChannelMethod,
    Contribution,
    HoldCandidate,
    Incoming,
    available_from,
    channel_answer,
    channel_ats,
    counting_incoming,
    place_network_hold,
    serves,
)
from omnistock.server.domain.fulfillment import CartLine
from omnistock.server.domain.locations import Capabilities, Location, LocationKind
from omnistock.server.domain.stock import Exposure, StockStatus

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
WEB = Channel("web", "Web shop", "all", sells_incoming=True)


def place(
    id: str, kind: LocationKind = LocationKind.STORE, *, ship: bool = False, pickup: bool = True
) -> Location:
    return Location(
        id=id,
        kind=kind,
        name=id,
        time_zone="UTC",
        latitude=0,
        longitude=0,
        capabilities=Capabilities(pickup=pickup, ship_from=ship),
    )


def fresh(
    location_id: str, quantity: int, *, minutes_old: int = 0, conf: float = 0.9
) -> Contribution:
    return Contribution(
        location_id,
        True,
        quantity,
        NOW - timedelta(minutes=minutes_old),
        conf,
        1.0 - minutes_old / 10_000,
        valid_until=NOW + timedelta(hours=24) - timedelta(minutes=minutes_old),
    )


def stale(location_id: str) -> Contribution:
    return Contribution(location_id, False, 0, NOW - timedelta(days=3), 0.0, 0.0)


def due(days: int, quantity: int) -> Incoming:
    day = TODAY + timedelta(days=days)
    return Incoming(
        day, quantity, datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    )


def answer(
    contributions: list[Contribution],
    *,
    channel: Channel = WEB,
    exposure: Exposure = Exposure.EXACT,
    incoming: Sequence[Incoming] = (),
    incoming_held: int = 0,
    requested: int = 1,
) -> ChannelAnswer:
    return channel_answer(
        channel,
        contributions,
        incoming=incoming,
        incoming_held=incoming_held,
        requested=requested,
        now=NOW,
        today=TODAY,
        exposure=exposure,
    )


def test_a_location_contributes_to_the_methods_its_capabilities_allow() -> None:
    shipping_store = place("S1", ship=True)
    warehouse = place("W1", LocationKind.WAREHOUSE, ship=True, pickup=False)
    pickup_only = place("S2")
    assert serves(shipping_store, ChannelMethod.SHIP) and serves(
        shipping_store, ChannelMethod.PICKUP
    )
    assert serves(warehouse, ChannelMethod.SHIP) and not serves(warehouse, ChannelMethod.PICKUP)
    assert serves(pickup_only, ChannelMethod.PICKUP) and not serves(pickup_only, ChannelMethod.SHIP)
    closed = Location(
        id="S3", kind=LocationKind.STORE, name="S3", time_zone="UTC", latitude=0, longitude=0,
        capabilities=Capabilities(pickup=True, ship_from=True), active=False,
    )  # fmt: skip
    assert not serves(closed, ChannelMethod.SHIP) and not serves(closed, ChannelMethod.PICKUP)


@given(st.integers(0, 1_000), st.integers(0, 1_000))
def test_store_protection_keeps_units_back_and_never_goes_below_zero(ats: int, kept: int) -> None:
    assert channel_ats(ats, kept) == max(0, ats - kept)
    assert 0 <= channel_ats(ats, kept) <= ats


def test_protection_is_per_location_or_the_channels_default() -> None:
    channel = Channel("web", "Web", "all", protection={"S1": 5}, default_protection=2)
    assert (channel.protection_at("S1"), channel.protection_at("S2")) == (5, 2)


def test_available_to_fulfil_sums_fresh_records_only() -> None:
    result = answer([fresh("S1", 3), fresh("S2", 4), stale("S3")])
    assert result.available_to_fulfil == 7
    assert result.status is StockStatus.IN_STOCK


def test_a_channel_whose_records_are_all_stale_reads_unknown() -> None:
    result = answer([stale("S1"), stale("S2")])
    assert result.status is StockStatus.UNKNOWN
    assert (result.as_of, result.confidence, result.available_from) == (None, 0.0, None)
    assert answer([]).status is StockStatus.UNKNOWN


def test_the_band_comes_from_the_channels_thresholds() -> None:
    strict = Channel("app", "App", "all", low_threshold=10)
    assert answer([fresh("S1", 7)], channel=strict).status is StockStatus.LIMITED
    assert answer([fresh("S1", 7)]).status is StockStatus.IN_STOCK


def test_as_of_is_the_oldest_record_that_gives_and_else_the_newest_fresh_one() -> None:
    giving = answer([fresh("S1", 2, minutes_old=30), fresh("S2", 1, minutes_old=5), fresh("S3", 0)])
    assert giving.as_of == NOW - timedelta(minutes=30)
    nothing = answer([fresh("S1", 0, minutes_old=30), fresh("S2", 0, minutes_old=5), stale("S3")])
    assert nothing.as_of == NOW - timedelta(minutes=5)


def test_confidence_is_weighted_by_what_each_location_gives() -> None:
    result = answer([fresh("S1", 3, conf=0.9), fresh("S2", 1, conf=0.5), fresh("S3", 0, conf=0.1)])
    assert result.confidence == round((0.9 * 3 + 0.5 * 1) / 4, 3)
    zero = answer([fresh("S1", 0, conf=0.6), fresh("S2", 0, conf=0.4), stale("S3")])
    assert zero.confidence == 0.5


@given(st.integers(1, 2), st.integers(1, 2), st.integers(3, 50), st.integers(3, 50))
def test_a_banded_channel_answer_is_the_same_for_counts_in_one_band(
    a: int, b: int, c: int, d: int
) -> None:
    # Two limited stores, two in-stock stores: counts differ, bands and ages do not.
    one = answer([fresh("S1", a, conf=0.7), fresh("S2", c, conf=0.9)], exposure=Exposure.BANDED)
    two = answer([fresh("S1", b, conf=0.8), fresh("S2", d, conf=0.95)], exposure=Exposure.BANDED)
    assert one == two
    assert one.available_to_fulfil is None and one.breakdown == ()


def test_incoming_stops_counting_the_day_after_its_date() -> None:
    today, yesterday = due(0, 5), due(-1, 5)
    assert counting_incoming([today, yesterday], NOW) == [today]


def test_available_to_order_adds_incoming_less_what_is_held() -> None:
    result = answer([fresh("S1", 2)], incoming=[due(3, 10), due(7, 5)], incoming_held=4)
    assert result.available_to_order == 2 + 15 - 4


def test_a_channel_that_does_not_sell_incoming_offers_no_order_date() -> None:
    shop = Channel("kiosk", "Kiosk", "all", sells_incoming=False)
    result = answer([fresh("S1", 1)], channel=shop, incoming=[due(3, 10)], requested=5)
    assert (result.available_to_order, result.available_from) == (None, None)


def test_available_from_is_the_first_date_enough_has_come_in() -> None:
    incoming = [due(7, 5), due(3, 2)]
    assert available_from(4, incoming, 0, 1, TODAY) == TODAY
    assert available_from(4, incoming, 0, 6, TODAY) == TODAY + timedelta(days=3)
    assert available_from(4, incoming, 0, 11, TODAY) == TODAY + timedelta(days=7)
    # Incoming held by pre-orders comes first.
    assert available_from(4, incoming, 2, 6, TODAY) == TODAY + timedelta(days=7)
    assert available_from(4, incoming, 0, 12, TODAY) is None


def test_an_answer_stands_until_a_record_goes_stale_or_incoming_passes() -> None:
    records = [fresh("S1", 2, minutes_old=60), fresh("S2", 1)]
    result = answer(records, incoming=[due(0, 3)])
    assert result.valid_until == min(NOW + timedelta(hours=23), due(0, 3).counts_until)


def test_an_exact_breakdown_is_capped_with_the_full_count() -> None:
    many = [fresh(f"S{i:04d}", 1 + i % 7) for i in range(3 * MAX_BREAKDOWN)]
    result = answer(many)
    assert len(result.breakdown) == MAX_BREAKDOWN
    assert result.contributing_count == 3 * MAX_BREAKDOWN
    quantities = [q for _, q in result.breakdown]
    assert quantities == sorted(quantities, reverse=True)


def test_a_network_hold_goes_to_the_nearest_location_that_covers_every_line() -> None:
    lines = [CartLine("A", 2), CartLine("B", 1)]
    near_short = HoldCandidate(place("S1"), {"A": 2, "B": 0}, 1.0)
    near = HoldCandidate(place("S2"), {"A": 2, "B": 1}, 5.0)
    far = HoldCandidate(place("S3"), {"A": 9, "B": 9}, 50.0)
    chosen = place_network_hold([far, near_short, near], lines, ChannelMethod.PICKUP)
    assert chosen is near


def test_a_network_hold_without_an_origin_goes_where_most_is_and_warehouses_first_to_ship() -> None:
    lines = [CartLine("A", 1)]
    store = HoldCandidate(place("S1", ship=True), {"A": 50})
    warehouse = HoldCandidate(
        place("W1", LocationKind.WAREHOUSE, ship=True, pickup=False), {"A": 3}
    )
    other = HoldCandidate(place("S2", ship=True), {"A": 10})
    assert place_network_hold([store, warehouse, other], lines, ChannelMethod.SHIP) is warehouse
    assert place_network_hold([store, other], lines, ChannelMethod.PICKUP) is store


def test_a_network_hold_no_location_can_cover_has_no_place() -> None:
    lines = [CartLine("A", 5)]
    assert (
        place_network_hold([HoldCandidate(place("S1"), {"A": 4}, 1.0)], lines, ChannelMethod.PICKUP)
        is None
    )


def test_a_sku_no_location_has_stocked_yet_is_a_pre_order_from_its_incoming() -> None:
    """No contributing location has a record: stock is known to be 0 (UNKNOWN band, as no
    record is fresh), and a channel that sells incoming offers it from the incoming date."""
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    line = Incoming(date(2026, 12, 12), 5, datetime(2026, 12, 13, tzinfo=UTC))
    answer = channel_answer(
        Channel("web", "Web", "g", sells_incoming=True),
        [],
        incoming=[line],
        now=now,
        today=now.date(),
        exposure=Exposure.EXACT,
    )
    assert answer.status is StockStatus.UNKNOWN
    assert (answer.available_to_fulfil, answer.available_to_order) == (0, 5)
    assert answer.available_from == date(2026, 12, 12)


def test_records_that_all_went_stale_promise_nothing_even_with_incoming() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    stale = Contribution("S1", False, 0, now - timedelta(days=3), 0.0, 0.0)
    line = Incoming(date(2026, 12, 12), 5, datetime(2026, 12, 13, tzinfo=UTC))
    answer = channel_answer(
        Channel("web", "Web", "g", sells_incoming=True),
        [stale],
        incoming=[line],
        now=now,
        today=now.date(),
        exposure=Exposure.EXACT,
    )
    assert answer.status is StockStatus.UNKNOWN
    assert answer.available_to_order is None and answer.available_from is None
