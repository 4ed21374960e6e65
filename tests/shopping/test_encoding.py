"""SearchNearby answers are written as bytes (NearbyPresenter): they must parse to the
message the same answers would make when built field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from omnistock.server.domain.fulfillment import CartLine
from omnistock.server.domain.hours import DayHours, describe
from omnistock.server.domain.locations import Capabilities, Location, LocationKind
from omnistock.server.domain.stock import Exposure, StockRecord, view_missing, view_record
from omnistock.server.service.answers import (
    LineAnswer,
    NearbyAnswer,
    Presentation,
    SearchResult,
    ShipAnswer,
    StoreAnswer,
)
from omnistock.server.transport.convert import STATUS_TO_PROTO, datetime_to_timestamp
from omnistock.server.transport.shopping import (
    NearbyPresenter,
    hours_to_proto,
    latlng,
    ship_to_proto,
)
from omnistock.v1 import availability_pb2

NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
MINUTE = NOW.replace(second=0)


def location(i: int, *, name: str = "", kind: LocationKind = LocationKind.STORE) -> Location:
    return Location(
        id=f"S{i}", kind=kind, name=name or f"Store {i}", time_zone="Europe/Amsterdam",
        latitude=52.0, longitude=4.0 + i / 100, country="NL",
        capabilities=Capabilities(pickup=True, ship_to_store=True, ship_from=True),
    )  # fmt: skip


def answers(
    loc: Location, lines: list[CartLine], on_hand: list[int | None]
) -> tuple[LineAnswer, ...]:
    result = []
    for line, quantity in zip(lines, on_hand, strict=True):
        if quantity is None:
            view = view_missing(loc.id, line.sku, loc.stock_policy, exposure=Exposure.EXACT)
        else:
            record = StockRecord(loc.id, line.sku, quantity, 0, None, NOW - timedelta(minutes=5))
            view = view_record(record, loc.stock_policy, now=NOW, exposure=Exposure.EXACT)
        result.append(LineAnswer(line, view, quantity is not None and quantity >= line.quantity))
    return tuple(result)


def expected_location(answer: NearbyAnswer) -> availability_pb2.NearbyLocation:
    """The NearbyLocation built the plain way, field by field."""
    p = answer.presentation
    return availability_pb2.NearbyLocation(
        location_id=answer.location.id,
        name=answer.location.name,
        distance_km=round(answer.distance_km, 3),
        lines=[
            availability_pb2.LineAvailability(
                sku=a.line.sku,
                quantity=a.line.quantity,
                status=STATUS_TO_PROTO[a.view.status],
                available_to_sell=a.view.available_to_sell,
                quantity_hint=a.view.quantity_hint,
                fulfillable=a.fulfillable,
                confidence=a.view.confidence,
                as_of=None if a.view.as_of is None else datetime_to_timestamp(a.view.as_of),
            )
            for a in answer.lines
        ],
        has_all=answer.has_all,
        ready_by=None if p.ready_by is None else datetime_to_timestamp(p.ready_by),
        ready_by_text="" if p.ready_by is None else describe(p.ready_by, p.minute),
        today_hours=hours_to_proto(p.today),
        open_now=p.open_now,
        time_zone=answer.location.time_zone,
    )


@pytest.mark.parametrize("stores", [0, 1, 12])
@pytest.mark.parametrize("long_names", [False, True])
def test_encoded_response_parses_to_the_message_built_field_by_field(
    stores: int, long_names: bool
) -> None:
    presenter = NearbyPresenter()
    lines = [CartLine("PHONE", 1), CartLine("CASE", 2), CartLine("CHARGER", 1)]
    open_day = DayHours(NOW.date(), NOW.replace(hour=7), NOW.replace(hour=21))
    found = []
    for i in range(stores):
        # Long names push an entry past 127 bytes, so its length takes two varint bytes.
        loc = location(i, name=("Store with a long name " * 12 if long_names else ""))
        presentation = Presentation(
            MINUTE,
            open_day if i % 3 else DayHours(NOW.date(), None, None),
            bool(i % 2),
            NOW.replace(hour=12, minute=30) if i % 4 else None,
            valid_until=MINUTE + timedelta(minutes=1),
        )
        on_hand = [[5, 0, None], [None, None, None], [1, 2, 3]][i % 3]
        found.append(
            NearbyAnswer(
                StoreAnswer(loc, answers(loc, lines, on_hand), presentation), 0.25 * i + 0.0004
            )
        )
    warehouse = location(99, kind=LocationKind.WAREHOUSE)
    ship = ShipAnswer(
        warehouse, list(answers(warehouse, lines, [9, 9, 9])), NOW + timedelta(days=2)
    )
    result = SearchResult((52.3731, 4.8926), found, ship)

    # Twice: the second answer comes from the presenter's per-minute cache.
    for _ in range(2):
        got = availability_pb2.SearchNearbyResponse.FromString(presenter.encode(result, NOW))
        want = availability_pb2.SearchNearbyResponse(
            locations=[expected_location(answer) for answer in found],
            ship=ship_to_proto(ship),
            origin=latlng(result.origin),
        )
        assert got == want


def test_a_changed_line_answer_is_encoded_afresh() -> None:
    presenter = NearbyPresenter()
    loc = location(1)
    lines = [CartLine("PHONE", 1)]
    presentation = Presentation(
        MINUTE, DayHours(NOW.date(), None, None), True, None, valid_until=MINUTE
    )

    def search(on_hand: int) -> availability_pb2.SearchNearbyResponse:
        answer = NearbyAnswer(StoreAnswer(loc, answers(loc, lines, [on_hand]), presentation), 1.0)
        return availability_pb2.SearchNearbyResponse.FromString(
            presenter.encode(SearchResult((52.0, 4.0), [answer], None), NOW)
        )

    assert search(5).locations[0].lines[0].available_to_sell == 5
    assert search(0).locations[0].lines[0].available_to_sell == 0
    assert not search(0).locations[0].has_all
