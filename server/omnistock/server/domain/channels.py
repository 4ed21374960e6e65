"""Channel availability: what a channel can sell now, and by when it can have more.

The rules of DESIGN.md ("Channels"), as pure functions over per-location answers, so
reads, searches, options, watches and holds all call the same ones:

- A channel sells from one location group. In it a location contributes to a method if
  it can serve that method (``serves``): SHIP from locations that ship, PICKUP at stores
  that hand over. An inactive location contributes nothing.
- Store protection keeps units back from the channel: ``channel_ats = max(0, ATS -
  protection)``, per location or the channel's default. It applies to every method of
  the channel, and never to incoming supply.
- Available to fulfil is the sum of channel ATS over the contributing locations' fresh
  records. A channel whose contributing records are all stale (or that has none) reads
  UNKNOWN.
- Incoming supply counts while its expected date (a calendar date at the location) has
  not passed; on that date it still counts, the day after it no longer does (the stock
  feed carries what arrived). A channel that sells incoming offers available to order:
  available to fulfil plus incoming, less the incoming already held by pre-orders.
- "Available from" is the earliest date on which available to fulfil plus the incoming
  due by then, less the incoming held, reaches the quantity asked.
- ``as_of`` is the oldest source time among the fresh records that contribute a
  positive quantity; with none, the newest fresh record's time.
- Confidence, for an EXACT caller, is the mean of the contributing records'
  confidences weighted by the quantity each contributes (with nothing to contribute,
  the plain mean over the fresh records). A BANDED caller gets the band's depth times
  the mean freshness of the fresh records, which no count moves.
- Every answer says until when it stands without a write (``valid_until``): the first
  moment a contributing record goes stale, a hold lapses, or an incoming date passes.
- An EXACT answer lists its contributing locations, largest first, at most
  ``MAX_BREAKDOWN`` of them, with the full count, so no answer grows with the group.
- A network hold is placed at one location that can cover every line from its channel
  ATS: the nearest to the origin, or, without one, the one with the most channel ATS
  for the lines (warehouses first for SHIP). None when no location can.
"""

from __future__ import annotations

import enum
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from omnistock.server.domain.fulfillment import CartLine, Method
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.domain.stock import (
    DEFAULT_LOW_THRESHOLD,
    Exposure,
    StockRecord,
    StockStatus,
    available_to_sell,
    band_depth,
    confidence,
    freshness,
    is_stale,
    reserved_at,
    status_band,
)

# The most contributing locations an EXACT channel answer lists.
MAX_BREAKDOWN = 100


class ChannelMethod(enum.IntEnum):
    """How a channel answer is asked: can I have it shipped, or pick it up in a store."""

    SHIP = Method.SHIP
    PICKUP = Method.PICKUP


@dataclass(frozen=True, slots=True)
class LocationGroup:
    """A named set of locations; a location may be in many groups, and a group may take
    in other groups (``member_group_ids``), whose locations then count as its own."""

    id: str
    name: str
    location_ids: frozenset[str]
    member_group_ids: frozenset[str] = frozenset()
    # When the group was last written (None before it is stored); not part of its value.
    updated_at: datetime | None = field(default=None, compare=False)


def resolve_group(group_id: str, groups: Mapping[str, LocationGroup]) -> frozenset[str]:
    """Every location of a group, its member groups' included (each once). Member groups
    missing from ``groups`` add nothing; a cycle is cut where it closes."""
    seen: set[str] = set()
    locations: set[str] = set()
    pending = [group_id]
    while pending:
        current = pending.pop()
        if current in seen or current not in groups:
            continue
        seen.add(current)
        locations |= groups[current].location_ids
        pending.extend(groups[current].member_group_ids)
    return frozenset(locations)


def reachable_groups(
    group_ids: Iterable[str], groups: Mapping[str, LocationGroup]
) -> frozenset[str]:
    """The groups named and every group they take in through member groups, each once
    (ids missing from ``groups`` left out)."""
    seen: set[str] = set()
    pending = list(group_ids)
    while pending:
        current = pending.pop()
        if current in seen or current not in groups:
            continue
        seen.add(current)
        pending.extend(groups[current].member_group_ids)
    return frozenset(seen)


def group_cycle(group_id: str, groups: Mapping[str, LocationGroup]) -> list[str] | None:
    """A path of member groups that leads from ``group_id`` back to itself, or None."""
    stack: list[tuple[str, list[str]]] = [
        (child, [group_id, child]) for child in sorted(groups[group_id].member_group_ids)
    ]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == group_id:
            return path
        if current in seen or current not in groups:
            continue
        seen.add(current)
        stack.extend((child, [*path, child]) for child in sorted(groups[current].member_group_ids))
    return None


@dataclass(frozen=True, slots=True)
class Channel:
    """A way shoppers buy (web, app, kiosk, a marketplace), selling from one group."""

    id: str
    name: str
    group_id: str
    # Units each location keeps back from this channel for walk-in shoppers; locations
    # not named keep ``default_protection``.
    protection: Mapping[str, int] = field(default_factory=dict)
    default_protection: int = 0
    # Whether the channel may sell incoming supply (pre-order, back-order).
    sells_incoming: bool = False
    low_threshold: int = DEFAULT_LOW_THRESHOLD
    # The methods the channel sells by.
    methods: frozenset[ChannelMethod] = frozenset({ChannelMethod.SHIP, ChannelMethod.PICKUP})
    # When the channel was last written (None before it is stored); not part of its value.
    updated_at: datetime | None = field(default=None, compare=False)

    def protection_at(self, location_id: str) -> int:
        return self.protection.get(location_id, self.default_protection)


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel with its group resolved: every location it sells from (member groups
    included). Which of them serve a method is ``serves``'s answer."""

    channel: Channel
    location_ids: frozenset[str]


def serves(location: Location, method: ChannelMethod) -> bool:
    """Whether a location of a channel's group contributes to answers for ``method``."""
    if not location.active:
        return False
    if method is ChannelMethod.SHIP:
        return location.capabilities.ship_from
    return location.kind is LocationKind.STORE and location.capabilities.pickup


def channel_ats(ats: int, protection: int) -> int:
    """What one location can sell to a channel: its ATS less the units it protects."""
    return max(0, ats - max(0, protection))


class Contribution(NamedTuple):
    """One contributing location's record, as a channel answer needs it (a named tuple:
    a kept total holds its contributions as plain tuples, untracked by the collector)."""

    location_id: str
    fresh: bool
    # Channel ATS: the record's ATS less the location's protection (0 when stale).
    quantity: int
    as_of: datetime | None
    # The record's EXACT confidence, and its freshness alone.
    confidence: float
    freshness: float
    # Until when this contribution stands without a write: it goes stale or a hold
    # counted in it lapses. None: it stands until a write.
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """Expected supply for the channel's answer: a quantity due on a date, counted until
    ``counts_until`` (the start of the day after that date, at its location)."""

    expected: date
    quantity: int
    counts_until: datetime


# Expected dates a feed may carry: "YYYY-MM-DD" from 2000 to 2100, as for source times.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EARLIEST_EXPECTED = date(2000, 1, 1)
LATEST_EXPECTED = date(2100, 12, 31)
EXPECTED_DATE_RULE = "must be a date YYYY-MM-DD from 2000-01-01 to 2100-12-31"


def parse_expected_date(text: str) -> date | None:
    """An incoming line's expected date from its "YYYY-MM-DD"; None when it is not a real
    date of that form within EARLIEST_EXPECTED..LATEST_EXPECTED."""
    if not _DATE.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:  # 2026-02-30
        return None
    return day if EARLIEST_EXPECTED <= day <= LATEST_EXPECTED else None


def incoming_counts_until(expected: date, time_zone: str) -> datetime:
    """When a line due on ``expected`` at a location in ``time_zone`` stops counting as
    incoming: the start of the next day there. It counts through its date."""
    return datetime.combine(expected + timedelta(days=1), time(0), tzinfo=ZoneInfo(time_zone))


@dataclass(frozen=True, slots=True)
class ChannelAnswer:
    status: StockStatus
    exposure: Exposure
    as_of: datetime | None
    confidence: float
    # EXACT only (None for BANDED callers).
    available_to_fulfil: int | None
    available_to_order: int | None
    # The earliest date the quantity asked can be had (today when it is there now);
    # None when it cannot be had, or the channel does not sell incoming and it is short.
    available_from: date | None
    valid_until: datetime | None
    # EXACT only: the largest contributions, at most MAX_BREAKDOWN, and how many there are.
    breakdown: tuple[tuple[str, int], ...] = ()
    contributing_count: int = 0


def available_to_fulfil(contributions: Iterable[Contribution]) -> int:
    """The sum of channel ATS over the fresh contributing records."""
    return sum(c.quantity for c in contributions if c.fresh)


def channel_as_of(contributions: Sequence[Contribution]) -> datetime | None:
    """The oldest source time among the fresh records that contribute a positive
    quantity; with none, the newest fresh record's time; None with no fresh record."""
    giving = [c.as_of for c in contributions if c.fresh and c.quantity > 0 and c.as_of]
    if giving:
        return min(giving)
    fresh = [c.as_of for c in contributions if c.fresh and c.as_of]
    return max(fresh) if fresh else None


def channel_confidence(contributions: Sequence[Contribution]) -> float:
    """The EXACT confidence: the contributing records' confidences weighted by what each
    contributes; with nothing contributed, the plain mean over the fresh records."""
    fresh = [c for c in contributions if c.fresh]
    total = sum(c.quantity for c in fresh)
    if total > 0:
        return round(sum(c.confidence * c.quantity for c in fresh) / total, 3)
    if not fresh:
        return 0.0
    return round(sum(c.confidence for c in fresh) / len(fresh), 3)


def banded_channel_confidence(
    contributions: Sequence[Contribution], status: StockStatus, low_threshold: int
) -> float:
    """The BANDED confidence: the band's depth times the mean freshness of the fresh
    records. Quantities weight nothing, so no count can be solved for."""
    fresh = [c.freshness for c in contributions if c.fresh]
    if not fresh:
        return 0.0
    return round(band_depth(status, low_threshold) * sum(fresh) / len(fresh), 3)


def counting_incoming(incoming: Iterable[Incoming], now: datetime) -> list[Incoming]:
    """The incoming supply that still counts at ``now``: its date has not passed."""
    return [line for line in incoming if now < line.counts_until and line.quantity > 0]


def available_from(
    fulfil: int, incoming: Sequence[Incoming], incoming_held: int, requested: int, today: date
) -> date | None:
    """The earliest date on which ``fulfil`` plus the incoming due by then, less the
    incoming already held, reaches ``requested``; None if it never does."""
    if fulfil >= requested:
        return today
    have = fulfil - incoming_held
    for line in sorted(incoming, key=lambda line: line.expected):
        have += line.quantity
        if have >= requested:
            return max(line.expected, today)
    return None


def channel_answer(
    channel: Channel,
    contributions: Sequence[Contribution],
    *,
    incoming: Sequence[Incoming] = (),
    incoming_held: int = 0,
    requested: int = 1,
    now: datetime,
    today: date,
    exposure: Exposure,
    held_until: datetime | None = None,
) -> ChannelAnswer:
    """A channel's answer for one sku and method, from its contributing locations'
    records and the incoming supply due at them (which must still count at ``now``).
    ``held_until``: when the first pre-order hold counted in ``incoming_held`` lapses."""
    fresh = [c for c in contributions if c.fresh]
    fulfil = available_to_fulfil(fresh)
    status = status_band(fulfil, stale=not fresh, low_threshold=channel.low_threshold)
    # Stock is known when a record is fresh, or when no contributing location has a record
    # at all (a product not stocked yet: 0 now, and a pre-order from its incoming). Only
    # records that all went stale leave it unknown, and then nothing is promised.
    known = bool(fresh) or not contributions
    to_order: int | None = None
    due = incoming if channel.sells_incoming and known else ()
    if channel.sells_incoming and known:
        to_order = max(0, fulfil + sum(line.quantity for line in due) - incoming_held)
    since = available_from(fulfil, due, incoming_held, requested, today) if known else None
    ends = [c.valid_until for c in contributions if c.valid_until is not None]
    ends += [line.counts_until for line in due]
    if held_until is not None and channel.sells_incoming:
        ends.append(held_until)
    valid_until = min(ends, default=None)
    if exposure is Exposure.EXACT:
        giving = sorted(
            ((c.location_id, c.quantity) for c in fresh if c.quantity > 0),
            key=lambda pair: (-pair[1], pair[0]),
        )
        return ChannelAnswer(
            status,
            exposure,
            channel_as_of(contributions),
            channel_confidence(contributions),
            available_to_fulfil=fulfil,
            available_to_order=to_order,
            available_from=since,
            valid_until=valid_until,
            breakdown=tuple(giving[:MAX_BREAKDOWN]),
            contributing_count=len(giving),
        )
    return ChannelAnswer(
        status,
        exposure,
        channel_as_of(contributions),
        banded_channel_confidence(contributions, status, channel.low_threshold),
        available_to_fulfil=None,
        available_to_order=None,
        available_from=since,
        valid_until=valid_until,
    )


_MICROSECOND = timedelta(microseconds=1)


def contribution(
    location: Location, record: StockRecord, protection: int, now: datetime
) -> Contribution:
    """One location's record as a channel answer counts it at ``now``: its channel ATS
    (0 when stale), its time, its EXACT confidence and freshness, and until when that
    stands without a write (the record going stale, a hold in it lapsing)."""
    policy = location.stock_policy
    budget = policy.freshness_budget
    ats = available_to_sell(
        record.on_hand, reserved_at(record, now), policy.safety_stock_for(record.safety_stock)
    )
    age = now - record.source_updated_at
    if is_stale(age, budget):
        return Contribution(location.id, False, 0, record.source_updated_at, 0.0, 0.0)
    ends = [record.source_updated_at + budget + _MICROSECOND]
    ends += [expires for _, expires in record.holds if expires > now]
    return Contribution(
        location.id,
        True,
        channel_ats(ats, protection),
        record.source_updated_at,
        confidence(age, budget, ats),
        freshness(age, budget),
        valid_until=min(ends),
    )


def incoming_line(expected: date, quantity: int, time_zone: str) -> Incoming:
    """An incoming line at a location: it counts until the start of the day after its
    expected date, in the location's time zone."""
    start = datetime.combine(expected + timedelta(days=1), time.min, ZoneInfo(time_zone))
    return Incoming(expected, quantity, start)


def held_incoming(
    holds: Iterable[tuple[int, datetime | None]], now: datetime
) -> tuple[int, datetime | None]:
    """The incoming held by pre-order holds at ``now`` (each (quantity, expires at), None
    for a hold that does not lapse), and when the first of them lapses."""
    counting = [
        (quantity, expires) for quantity, expires in holds if expires is None or expires > now
    ]
    ends = [expires for _, expires in counting if expires is not None]
    return sum(quantity for quantity, _ in counting), min(ends, default=None)


def available_from_text(since: date | None, today: date) -> str:
    """ "available from 12 Dec" when ``since`` is after today, else nothing."""
    if since is None or since <= today:
        return ""
    return f"available from {since.day} {since.strftime('%b')}"


@dataclass(frozen=True, slots=True)
class HoldCandidate:
    """A location of the channel that might take a network hold: its channel ATS per sku
    of the hold, and its distance from the shopper when there is an origin."""

    location: Location
    channel_ats: Mapping[str, int]
    distance_km: float | None = None


def place_network_hold(
    candidates: Iterable[HoldCandidate], lines: Sequence[CartLine], method: ChannelMethod
) -> HoldCandidate | None:
    """The one location to hold every line at: among those whose channel ATS covers every
    line, the nearest to the origin; without an origin, the one with the most channel ATS
    for the lines (warehouses first for SHIP); ties by location id. None when no location
    can cover every line."""
    ranked = rank_network_hold(candidates, lines, method, limit=1)
    return ranked[0] if ranked else None


def rank_network_hold(
    candidates: Iterable[HoldCandidate],
    lines: Sequence[CartLine],
    method: ChannelMethod,
    *,
    limit: int,
) -> list[HoldCandidate]:
    """The ``limit`` best locations for a hold by ``place_network_hold``'s rule, best first
    (a hold tries the next when a concurrent one took the first)."""
    able = [
        c
        for c in candidates
        if serves(c.location, method)
        and all(c.channel_ats.get(line.sku, 0) >= line.quantity for line in lines)
    ]
    if not able:
        return []
    if all(c.distance_km is not None for c in able):
        return heapq.nsmallest(limit, able, key=lambda c: (c.distance_km, c.location.id))

    def most(c: HoldCandidate) -> tuple[object, ...]:
        warehouse_first = method is ChannelMethod.SHIP and c.location.kind is LocationKind.WAREHOUSE
        held = sum(c.channel_ats.get(line.sku, 0) for line in lines)
        return (not warehouse_first, -held, c.location.id)

    return heapq.nsmallest(limit, able, key=most)
