"""Incoming supply through the SDK, on both databases: line updates and snapshots follow
the stock feed's ordering and replay rules, bad lines are rejected one by one (or refuse a
whole snapshot), and listing pages and says which lines still count at each location's
date. Scope and the change bus: test_incoming_scope_and_bus.py."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from conftest import NOW, FixedClock
from factories import store, warehouse
from incoming_lines import AMS, DAY, NYC, WH, line, listed
from omnistock.client import (
    Client,
    IncomingLine,
    IncomingUpdate,
    InvalidArgumentError,
    InvalidRecordError,
    NotFoundError,
    timestamp,
)


@pytest.fixture
def feeding(client: Client) -> Client:
    client.upsert_locations(
        [warehouse(WH), store(AMS), store(NYC, time_zone="America/New_York", country="US")]
    )
    return client


def test_lines_of_the_same_pair_add_up_and_are_listed_by_location_sku_and_line(
    feeding: Client,
) -> None:
    result = feeding.apply_incoming_updates(
        [
            line(WH, "PHONE", "PO-2", 30, DAY + timedelta(days=9)),
            line(WH, "PHONE", "PO-1", 50, DAY + timedelta(days=2)),
            line(AMS, "PHONE", "TR-7", 4, DAY + timedelta(days=1)),
            IncomingUpdate(
                location_id=WH,
                sku="CASE",
                line_id="PO-1",
                quantity=8,
                expected_date="2026-11-25",
                source_updated_at=timestamp(NOW),
            ),
        ]
    )
    assert (result.applied_count, result.stale_count, result.rejected_count) == (4, 0, 0)
    assert listed(feeding, sku="PHONE") == [
        (AMS, "PHONE", "TR-7", 4, "2026-11-24", True),
        (WH, "PHONE", "PO-1", 50, "2026-11-25", True),
        (WH, "PHONE", "PO-2", 30, "2026-12-02", True),
    ]
    assert [s[:3] for s in listed(feeding, location_id=WH)] == [
        (WH, "CASE", "PO-1"),
        (WH, "PHONE", "PO-1"),
        (WH, "PHONE", "PO-2"),
    ]
    assert listed(feeding, sku="PHONE", location_id=AMS) == [
        (AMS, "PHONE", "TR-7", 4, "2026-11-24", True)
    ]


def test_late_repeated_and_out_of_order_updates_end_the_same(feeding: Client) -> None:
    updates = [
        line(WH, "PHONE", "PO-1", 50, at=NOW - timedelta(hours=2)),
        line(WH, "PHONE", "PO-1", 20, DAY + timedelta(days=3), at=NOW - timedelta(hours=1)),
        line(WH, "PHONE", "PO-1", 25, at=NOW - timedelta(hours=1), sequence=4),
        line(WH, "PHONE", "PO-2", 9, at=NOW),
        line(WH, "PHONE", "PO-2", 0, at=NOW + timedelta(minutes=1)),  # closed
    ]
    ends = set()
    # Each order feeds a sku of its own, so that each starts from nothing.
    for n, order in enumerate(itertools.islice(itertools.permutations(updates), 0, None, 17)):
        sku = f"PHONE-{n}"
        for update in order:
            feeding.apply_incoming_updates([{**update, "sku": sku}])
        feeding.apply_incoming_updates([{**u, "sku": sku} for u in order])  # a replay
        ends.add(tuple(s[2:] for s in listed(feeding, sku=sku)))
    # The sequenced update wins its time; the closed line is not listed.
    assert ends == {(("PO-1", 25, "2026-11-23", True),)}


def test_updates_of_one_time_and_sequence_are_ordered_by_quantity_then_date(
    feeding: Client,
) -> None:
    ties = [
        line(WH, "PHONE", "PO-1", 20, DAY + timedelta(days=9)),
        line(WH, "PHONE", "PO-1", 30, DAY),
        line(WH, "PHONE", "PO-1", 30, DAY + timedelta(days=1)),
    ]
    for n, order in enumerate(itertools.permutations(ties)):
        sku = f"PHONE-{n}"  # each order from nothing
        for update in order:
            feeding.apply_incoming_updates([{**update, "sku": sku}])
        assert listed(feeding, sku=sku) == [(WH, sku, "PO-1", 30, "2026-11-24", True)]


def test_an_older_or_repeated_update_is_counted_stale(feeding: Client) -> None:
    feeding.apply_incoming_updates([line(WH, "PHONE", "PO-1", 50)])
    late = feeding.apply_incoming_updates(
        [
            line(WH, "PHONE", "PO-1", 70, at=NOW - timedelta(minutes=5)),
            line(WH, "PHONE", "PO-1", 50),
        ]
    )
    assert (late.applied_count, late.stale_count) == (0, 2)
    assert listed(feeding, sku="PHONE")[0][3] == 50


def test_a_snapshot_replaces_its_locations_lines_and_drops_those_it_leaves_out(
    feeding: Client,
) -> None:
    feeding.apply_incoming_updates(
        [
            line(WH, "PHONE", "PO-1", 50, at=NOW - timedelta(hours=1)),
            line(WH, "CASE", "PO-3", 5, at=NOW - timedelta(hours=1)),
            line(WH, "CHARGER", "PO-4", 6, at=NOW + timedelta(minutes=5)),  # newer: kept
            line(AMS, "PHONE", "TR-1", 3, at=NOW - timedelta(hours=1)),  # elsewhere: kept
        ]
    )
    lines = [
        ("PHONE", "PO-1", 40, DAY),
        IncomingLine(sku="PHONE", line_id="PO-9", quantity=7, expected_date="2026-12-01"),
    ]
    result = feeding.import_incoming_snapshot(WH, NOW, lines)
    assert (result.applied_count, result.stale_count, result.zeroed_count) == (2, 0, 1)
    assert [s[:4] for s in listed(feeding, location_id=WH)] == [
        (WH, "CHARGER", "PO-4", 6),
        (WH, "PHONE", "PO-1", 40),
        (WH, "PHONE", "PO-9", 7),
    ]
    assert [s[:4] for s in listed(feeding, location_id=AMS)] == [(AMS, "PHONE", "TR-1", 3)]
    # An update older than the snapshot for a line it left out stays dropped.
    late = feeding.apply_incoming_updates(
        [line(WH, "CASE", "PO-3", 9, at=NOW - timedelta(minutes=1))]
    )
    assert (late.applied_count, late.stale_count) == (0, 1)
    assert "CASE" not in {s[1] for s in listed(feeding, location_id=WH)}
    # Replayed, and arriving after a newer one, a snapshot changes nothing.
    replay = feeding.import_incoming_snapshot(WH, NOW, lines)
    assert (replay.applied_count, replay.stale_count, replay.zeroed_count) == (0, 2, 0)
    older = feeding.import_incoming_snapshot(
        WH, NOW - timedelta(hours=3), [("PHONE", "PO-5", 1, DAY)]
    )
    assert (older.applied_count, older.stale_count, older.zeroed_count) == (0, 1, 0)
    assert [s[2] for s in listed(feeding, location_id=WH)] == ["PO-4", "PO-1", "PO-9"]
    # An empty snapshot, newer than every line, closes them all.
    empty = feeding.import_incoming_snapshot(WH, NOW + timedelta(hours=1), [])
    assert (empty.applied_count, empty.zeroed_count) == (0, 3)
    assert listed(feeding, location_id=WH) == []


def test_bad_lines_are_rejected_one_by_one_and_the_rest_apply(feeding: Client) -> None:
    result = feeding.apply_incoming_updates(
        [
            line(WH, "PHONE", "PO-1", 5),
            line("NL-NOPE-01", "PHONE", "PO-1", 5),
            line(WH, "PHONE", "PO-2", 10**12 + 1),
            {**line(WH, "PHONE", "PO-3", 5), "expected_date": "2026-02-30"},
            {**line(WH, "PHONE", "PO-4", 5), "expected_date": "20261201"},
            {**line(WH, "bad sku", "PO-5", 5)},
            {**line(WH, "PHONE", "PO-6", 5), "source_updated_at": None},
            line(WH, "PHONE", "PO-7", 5, at=datetime(2150, 1, 1, tzinfo=NOW.tzinfo)),
            line(WH, "PHONE", "", 5),
            line(WH, "PHONE", "PO-8", 0),  # closing a line that was never open: fine
            {**line(WH, "PHONE", "PO-9", 5), "expected_date": "1999-12-31"},
            line(WH, "PHONE", "PO-10", 5, sequence=-1),
        ]
    )
    assert (result.applied_count, result.rejected_count) == (2, 10)
    assert [(r.index, r.field, r.reason) for r in result.rejects] == [
        (1, "location_id", "LOCATION_NOT_FOUND"),
        (2, "quantity", "INVALID_FIELD"),
        (3, "expected_date", "INVALID_FIELD"),
        (4, "expected_date", "INVALID_FIELD"),
        (5, "sku", "INVALID_FIELD"),
        (6, "source_updated_at", "INVALID_FIELD"),
        (7, "source_updated_at", "INVALID_FIELD"),
        (8, "line_id", "INVALID_FIELD"),
        (10, "expected_date", "INVALID_FIELD"),
        (11, "source_sequence", "INVALID_FIELD"),
    ]
    assert [s[2] for s in listed(feeding, location_id=WH)] == ["PO-1"]


def test_an_empty_or_oversized_batch_is_invalid_argument(feeding: Client) -> None:
    for updates in ([], [line(WH, "PHONE", f"PO-{i}", 1) for i in range(10_001)]):
        with pytest.raises(InvalidArgumentError) as caught:
            feeding.apply_incoming_updates(updates)
        assert caught.value.field_violations[0].field == "updates"
    assert listed(feeding, location_id=WH) == []


def test_one_bad_line_refuses_the_whole_snapshot(feeding: Client) -> None:
    feeding.apply_incoming_updates([line(WH, "PHONE", "PO-1", 5, at=NOW - timedelta(hours=1))])
    with pytest.raises(InvalidArgumentError) as caught:
        feeding.import_incoming_snapshot(
            WH,
            NOW,
            [
                ("PHONE", "PO-2", 3, DAY),
                ("PHONE", "PO-3", -1, DAY),
                ("CASE", "PO-4", 1, "2026-13-01"),
                ("PHONE", "PO-2", 4, DAY),
            ],
        )
    assert [v.field for v in caught.value.field_violations] == [
        "lines[1].quantity",
        "lines[2].expected_date",
        "lines[3].line_id",
    ]
    with pytest.raises(InvalidArgumentError):
        feeding.import_incoming_snapshot(
            WH,
            NOW,
            [("PHONE", "PO-2", 3, DAY)] * 1 + [("X", f"L{i}", 1, DAY) for i in range(10_000)],
        )
    with pytest.raises(NotFoundError) as missing:
        feeding.import_incoming_snapshot("NL-NOPE-01", NOW, [("PHONE", "PO-2", 3, DAY)])
    assert missing.value.reason == "LOCATION_NOT_FOUND"
    # Nothing was written: PO-1 is still there, PO-2 is not.
    assert [s[2] for s in listed(feeding, location_id=WH)] == ["PO-1"]


def test_the_sdk_names_a_line_it_cannot_send(feeding: Client) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        feeding.apply_incoming_updates(
            [line(WH, "PHONE", "PO-1", 1), {**line(WH, "PHONE", "PO-2", 1), "quantity": "many"}]
        )
    assert (caught.value.index, caught.value.field) == (1, "quantity")
    with pytest.raises(ValueError, match="aware"):
        feeding.import_incoming_snapshot(WH, NOW.replace(tzinfo=None), [])


def test_a_line_counts_through_its_date_at_the_location_and_stops_the_day_after(
    feeding: Client, clock: FixedClock
) -> None:
    feeding.apply_incoming_updates(
        [line(AMS, "PHONE", "TR-1", 2, DAY), line(NYC, "PHONE", "TR-2", 3, DAY)]
    )
    assert [s[5] for s in listed(feeding, sku="PHONE")] == [True, True]
    # 23:30 UTC: already the 24th in Amsterdam, still the 23rd in New York.
    clock.now = datetime.combine(DAY, datetime.min.time(), NOW.tzinfo) + timedelta(
        hours=23, minutes=30
    )
    assert [(s[0], s[5]) for s in listed(feeding, sku="PHONE")] == [(AMS, False), (NYC, True)]
    clock.now += timedelta(hours=5)  # 23:30 in New York
    assert [(s[0], s[5]) for s in listed(feeding, sku="PHONE")] == [(AMS, False), (NYC, True)]
    clock.now += timedelta(minutes=31)  # 00:01 on the 24th in New York
    assert [(s[0], s[5]) for s in listed(feeding, sku="PHONE")] == [(AMS, False), (NYC, False)]


def test_listing_pages_with_tokens_and_needs_a_sku_or_location(feeding: Client) -> None:
    feeding.apply_incoming_updates([line(WH, "PHONE", f"PO-{i:03}", i + 1) for i in range(105)])
    pages = list(feeding.list_incoming_supply(sku="PHONE", page_size=40).pages)
    assert [len(p.lines) for p in pages] == [40, 40, 25]
    assert [s.line_id for p in pages for s in p.lines] == [f"PO-{i:03}" for i in range(105)]
    assert len(next(iter(feeding.list_incoming_supply(sku="PHONE").pages)).lines) == 100
    with pytest.raises(InvalidArgumentError) as too_big:
        next(iter(feeding.list_incoming_supply(sku="PHONE", page_size=1001)))
    assert too_big.value.field_violations[0].field == "page_size"
    with pytest.raises(InvalidArgumentError) as caught:
        feeding.list_incoming_supply().pages.__next__()
    assert caught.value.field_violations[0].field == "sku"
    token = pages[0].next_page_token
    with pytest.raises(InvalidArgumentError) as moved:  # a token is bound to its filters
        next(iter(feeding.list_incoming_supply(sku="CASE", page_token=token)))
    assert moved.value.field_violations[0].field == "page_token"
    with pytest.raises(NotFoundError):
        next(iter(feeding.list_incoming_supply(location_id="NL-NOPE-01")))
