"""Shoppers' answers and their memo: what a search says of a store, a line and a
shipment, each kept for the minute while what it was built from stands.

Every kept answer names the versions it was built on (the directory's generation, a
record equal to the one now read), never object identity, and each StoreAnswer and
ShipAnswer has a serial of its own by which a copy made from it (its encoded entry) is
kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.fulfillment import CartLine, can_supply, delivered_by, delivery_date
from omnistock.server.domain.hours import DayHours, hours_on, is_open, ready_by
from omnistock.server.domain.locations import Location
from omnistock.server.domain.stock import (
    AvailabilityView,
    Exposure,
    StockRecord,
    available_to_sell,
    is_stale,
    reserved_at,
    view_missing,
    view_record,
)
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.minute import MinuteCache
from omnistock.server.readmodel.stock import SkuRecords

# Serials of store and ship answers (StoreAnswer.serial); next() on a count is atomic.
_SERIALS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class LineAnswer:
    line: CartLine
    view: AvailabilityView
    fulfillable: bool
    # Through a channel that sells incoming, for a line not fulfillable here: the
    # earliest date it can be had from incoming due here.
    available_from: date | None = None


@dataclass(frozen=True, slots=True)
class Presentation:
    """What a nearby answer says of a location besides its stock, for one minute."""

    minute: datetime
    today: DayHours
    open_now: bool
    ready_by: datetime | None
    # Until when it holds: the next minute, or the instant it was made for (see
    # ShoppingService.presentation).
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """What a nearby answer says of one store for one cart: each line's answer, and the
    store's presentation. Reused within the minute while the store's records stand.
    ``serial`` names this answer: drawn once, never reused, so a copy made from it (its
    encoded entry) stands while the serial it was made from is the one handed back."""

    location: Location
    lines: tuple[LineAnswer, ...]
    presentation: Presentation
    fulfillable: int = field(init=False)
    serial: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fulfillable", sum(a.fulfillable for a in self.lines))
        object.__setattr__(self, "serial", next(_SERIALS))

    @property
    def has_all(self) -> bool:
        return self.fulfillable == len(self.lines)


@dataclass(slots=True)  # not frozen: made for every store listed, and frozen costs 2x
class NearbyAnswer:
    store: StoreAnswer
    distance_km: float

    @property
    def location(self) -> Location:
        return self.store.location

    @property
    def lines(self) -> tuple[LineAnswer, ...]:
        return self.store.lines

    @property
    def presentation(self) -> Presentation:
        return self.store.presentation

    @property
    def ready_by(self) -> datetime | None:
        return self.store.presentation.ready_by

    @property
    def today(self) -> DayHours:
        return self.store.presentation.today

    @property
    def open_now(self) -> bool:
        return self.store.presentation.open_now

    @property
    def has_all(self) -> bool:
        return self.store.has_all


@dataclass(frozen=True, slots=True)
class ShipAnswer:
    location: Location
    lines: list[LineAnswer]
    delivery: datetime
    serial: int = field(init=False)  # as StoreAnswer.serial

    def __post_init__(self) -> None:
        object.__setattr__(self, "serial", next(_SERIALS))

    @property
    def has_all(self) -> bool:
        return all(line.fulfillable for line in self.lines)


@dataclass(frozen=True, slots=True)
class SearchResult:
    origin: tuple[float, float]
    locations: list[NearbyAnswer]
    ship: ShipAnswer | None


@dataclass(frozen=True, slots=True)
class _KeptShip:
    """A cart's ship answer for the minute, and until when it stands with time alone."""

    answer: ShipAnswer | None
    until: datetime


@dataclass(frozen=True, slots=True)
class _KeptLine:
    """A line's answer at a store for the minute, and what it was built from: it stands
    while the sku's records have the same version (so the record is the same), it is
    still fresh (or stale), holds as much, and the directory's generation (the location)
    is the same."""

    records_version: int
    stale: bool
    holding: int
    directory_generation: int
    answer: LineAnswer


@dataclass(frozen=True, slots=True)
class _KeptPresentation:
    directory_generation: int
    presentation: Presentation


# A location's line answers from its records of the lines' skus.
LineAnswers = Callable[[Location, Sequence[StockRecord | None]], list[LineAnswer]]


class AnswerMemo:
    """Line answers, store presentations and ship answers, computed once a minute."""

    def __init__(self, directory: LocationDirectory, write_generation: Callable[[], int]) -> None:
        self._directory = directory
        # The stock cache's write generation: a ship answer stands until a write lands.
        self._write_generation = write_generation
        self._ship_answers: MinuteCache[tuple[tuple[str, Exposure], int, int], _KeptShip] = (
            MinuteCache(max_entries=10_000)
        )
        # Both kept with the directory generation they were built on: a location changed
        # in the directory is presented and answered afresh within the minute.
        self._presentations: MinuteCache[str, _KeptPresentation] = MinuteCache()
        self._line_answers: MinuteCache[tuple[str, str, int, Exposure], _KeptLine] = MinuteCache()

    def lines(
        self,
        location: Location,
        lines: Sequence[CartLine],
        held: Sequence[StockRecord | None],
        versions: Sequence[int],
        now: datetime,
        exposure: Exposure,
    ) -> list[LineAnswer]:
        """Each line's answer at ``location``, from ``held``: the location's record of
        each line's sku (None where it has none), of the sku's records of ``versions``."""
        policy = location.stock_policy
        minute = now.replace(second=0, microsecond=0)
        generation = self._directory.generation
        answers = []
        for line, record, version in zip(lines, held, versions, strict=True):
            # Within a minute the same record, quantity and exposure give the same answer
            # (confidence moves slowly), unless the record has gone stale meanwhile.
            stale = record is not None and is_stale(
                now - record.source_updated_at, policy.freshness_budget
            )
            # A hold that lapses within the minute changes the answer at once.
            holding = reserved_at(record, now) if record is not None and record.holds else 0
            key = (location.id, line.sku, line.quantity, exposure)
            cached = self._line_answers.get(minute, key)
            if (
                cached is not None
                and cached.stale == stale
                and cached.holding == holding
                and cached.directory_generation == generation
                and cached.records_version == version
            ):
                answers.append(cached.answer)
                continue
            if record is None:
                view = view_missing(location.id, line.sku, policy, exposure=exposure)
                ats = 0
            else:
                view = view_record(record, policy, now=now, exposure=exposure)
                ats = available_to_sell(
                    record.on_hand,
                    reserved_at(record, now),
                    policy.safety_stock_for(record.safety_stock),
                )
            answer = LineAnswer(line, view, can_supply(view, line.quantity, ats))
            kept = _KeptLine(version, stale, holding, generation, answer)
            self._line_answers.put(minute, key, kept)
            answers.append(answer)
        return answers

    def ship_answer(
        self,
        lines: Sequence[CartLine],
        records: dict[str, SkuRecords],
        now: datetime,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
        line_answers: LineAnswers | None = None,
    ) -> tuple[ShipAnswer | None, datetime]:
        """The best shipping location (of those ``visible``, None for all): has every
        line, then earliest delivery, then id; failing that, the one with most lines. And
        until when that stands with time alone (a record going stale, a hold lapsing).
        ``line_answers(location, held)`` answers the lines (a channel's, say); by
        default, ``lines`` of this memo."""
        best: tuple[tuple[object, ...], ShipAnswer] | None = None
        until = FOREVER
        versions = versions_of(records, lines)
        for location in self._directory.shippers(renew=False):
            if visible is not None and location.id not in visible:
                continue
            held = records_at(records, lines, location)
            until = min(until, valid_until(held, location, now))
            if line_answers is None:
                answers = self.lines(location, lines, held, versions, now, exposure)
            else:
                answers = line_answers(location, held)
            delivery = delivered_by(location, delivery_date(location, now))
            answer = ShipAnswer(location, answers, delivery)
            key = (-sum(a.fulfillable for a in answers), delivery, location.id)
            if best is None or key < best[0]:
                best = (key, answer)
        return (None if best is None else best[1]), until

    def cached_ship_answer(
        self,
        lines: Sequence[CartLine],
        records: dict[str, SkuRecords],
        now: datetime,
        cart: tuple[str, Exposure],
    ) -> ShipAnswer | None:
        """The ship answer for a cart (its lines as text, and the exposure), reused within
        the minute until a write lands, a location changes, or one of the shippers'
        records goes stale or loses a hold."""
        minute = now.replace(second=0, microsecond=0)
        key = (cart, self._write_generation(), self._directory.generation)
        cached = self._ship_answers.get(minute, key)
        if cached is not None and now < cached.until:
            return cached.answer
        answer, until = self.ship_answer(lines, records, now, cart[1])
        self._ship_answers.put(minute, key, _KeptShip(answer, until))
        return answer

    def presentation(self, location: Location, now: datetime) -> Presentation:
        """Today's hours, open now and ready-by for ``location``, computed once a minute.

        Open now is as of the start of the minute. Ready-by is computed from the start of
        the next minute, so it never promises earlier than ready_by(now) would at any
        moment of the minute. A search at the very start of a minute gets ready_by(now)
        exactly, valid for that instant only: kept for the minute, it would promise
        "today 21:00" at 19:00:30 when the cutoff passed at 19:00:10.
        """
        minute = now.replace(second=0, microsecond=0)
        # The directory's generation grows whenever a location may have changed.
        generation = self._directory.generation
        cached = self._presentations.get(minute, location.id)
        if cached is not None and cached.directory_generation == generation:
            return cached.presentation
        today = hours_on(location, minute.astimezone(ZoneInfo(location.time_zone)).date())
        pickup = location.capabilities.pickup
        if now == minute:
            return Presentation(
                minute,
                today,
                is_open(location, minute),
                ready_by(location, now) if pickup else None,
                valid_until=now + MICROSECOND,
            )
        next_minute = minute + timedelta(minutes=1)
        presentation = Presentation(
            minute,
            today,
            is_open(location, minute),
            ready_by(location, next_minute) if pickup else None,
            valid_until=next_minute,
        )
        kept = _KeptPresentation(generation, presentation)
        self._presentations.put(minute, location.id, kept)
        return presentation


FOREVER = datetime.max.replace(tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def records_at(
    records: dict[str, SkuRecords], lines: Sequence[CartLine], location: Location
) -> list[StockRecord | None]:
    """The location's record of each line's sku, None where it has none."""
    return [records[line.sku].records.get(location.id) for line in lines]


def versions_of(records: dict[str, SkuRecords], lines: Sequence[CartLine]) -> list[int]:
    """The version of each line's sku records."""
    return [records[line.sku].version for line in lines]


def valid_until(
    records: Sequence[StockRecord | None], location: Location, now: datetime
) -> datetime:
    """When answers built from ``records`` at ``now`` may change with time alone: a fresh
    record going stale, or a hold lapsing."""
    budget = location.stock_policy.freshness_budget
    until = FOREVER
    for record in records:
        if record is None:
            continue
        # The first moment the record is stale: its age is then above the budget.
        stale_at = record.source_updated_at + budget + MICROSECOND
        if now < stale_at < until:
            until = stale_at
        for _, expires in record.holds:
            if now < expires < until:
                until = expires
    return until
