"""Snapshots, delta streams, feed status and exports through the SDK, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import minutes, store, ts, update, warehouse
from omnistock.client import (
    Client,
    DeltaRecord,
    Exposure,
    FreshnessState,
    InvalidArgumentError,
    NotFoundError,
    SnapshotRecord,
    StockStatus,
)


@pytest.fixture
def feeding(client: Client) -> Client:
    client.upsert_locations([store("NL-AMS-01"), store("NL-RTM-01"), warehouse("NL-WH-01")])
    return client


def on_hand(client: Client, location_id: str, *skus: str) -> list[int]:
    answers = client.batch_get_availability(
        [(sku, location_id) for sku in skus], exposure=Exposure.EXACT
    )
    return [a.on_hand for a in answers]


def delta(location_id: str, sku: str, at: object, **change: int) -> DeltaRecord:
    return DeltaRecord(location_id=location_id, sku=sku, source_updated_at=ts(at), **change)  # type: ignore[arg-type]


def test_snapshot_replaces_the_stock_of_its_location(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(30), [("A", 5), ("B", 7), ("C", 1)])
    result = feeding.import_snapshot("NL-AMS-01", NOW, [("A", 4), ("D", 9)])
    assert (
        result.received_count,
        result.applied_count,
        result.stale_count,
        result.zeroed_count,
    ) == (2, 2, 0, 2)
    assert on_hand(feeding, "NL-AMS-01", "A", "B", "C", "D") == [4, 0, 0, 9]


def test_snapshot_leaves_other_locations_alone(feeding: Client) -> None:
    feeding.import_snapshot("NL-RTM-01", NOW - minutes(30), [("A", 3)])
    feeding.import_snapshot("NL-AMS-01", NOW, [("B", 1)])
    assert on_hand(feeding, "NL-RTM-01", "A") == [3]


def test_records_newer_than_the_snapshot_are_kept(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(60), [("A", 5), ("B", 5)])
    feeding.apply_stock_updates(
        [update("NL-AMS-01", "A", 8, NOW), update("NL-AMS-01", "B", 2, NOW)]
    )
    result = feeding.import_snapshot("NL-AMS-01", NOW - minutes(10), [("A", 1)])
    # A in the snapshot but newer in store: stale. B missing but newer: not zeroed.
    assert (result.applied_count, result.stale_count, result.zeroed_count) == (0, 1, 0)
    assert on_hand(feeding, "NL-AMS-01", "A", "B") == [8, 2]


def test_replaying_a_snapshot_changes_nothing(feeding: Client) -> None:
    records = [("A", 5), ("B", 6)]
    feeding.import_snapshot("NL-AMS-01", NOW, records)
    replay = feeding.import_snapshot("NL-AMS-01", NOW, records)
    assert (replay.applied_count, replay.stale_count, replay.zeroed_count) == (0, 2, 0)
    assert on_hand(feeding, "NL-AMS-01", "A", "B") == [5, 6]


def test_a_snapshot_older_than_the_last_one_only_confirms_its_zeros(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW, [("A", 5)])
    late = feeding.import_snapshot("NL-AMS-01", NOW - minutes(5), [("A", 9), ("B", 4)])
    assert (late.applied_count, late.stale_count) == (0, 2)
    assert on_hand(feeding, "NL-AMS-01", "A", "B") == [5, 0]


def test_a_bad_record_rejects_the_whole_snapshot(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(30), [("A", 5)])
    records = [SnapshotRecord(sku="B", on_hand=1), SnapshotRecord(sku="bad sku", on_hand=1)]
    with pytest.raises(InvalidArgumentError) as caught:
        feeding.import_snapshot("NL-AMS-01", NOW, records)
    assert [v.field for v in caught.value.field_violations] == ["records[1].sku"]
    assert on_hand(feeding, "NL-AMS-01", "A") == [5]
    with pytest.raises(NotFoundError):
        feeding.get_availability("B")


def test_a_bad_record_in_a_later_message_is_named_by_its_stream_index(feeding: Client) -> None:
    records = [SnapshotRecord(sku=f"S{i}", on_hand=1) for i in range(25)]
    records.append(SnapshotRecord(sku="S25", on_hand=1, safety_stock=-2))
    with pytest.raises(InvalidArgumentError) as caught:
        feeding.import_snapshot("NL-AMS-01", NOW, records, batch_size=10)
    assert [v.field for v in caught.value.field_violations] == ["records[25].safety_stock"]


def test_a_snapshot_for_an_unknown_location_is_not_found(feeding: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        feeding.import_snapshot("NL-NOPE-01", NOW, [("A", 1)])
    assert caught.value.reason == "LOCATION_NOT_FOUND"


def test_an_empty_snapshot_zeroes_the_location(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(1), [("A", 5)])
    result = feeding.import_snapshot("NL-AMS-01", NOW, [])
    assert result.zeroed_count == 1
    assert on_hand(feeding, "NL-AMS-01", "A") == [0]


def test_a_snapshot_keeps_reads_coherent(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(1), [("A", 5)])
    assert on_hand(feeding, "NL-AMS-01", "A") == [5]  # now cached
    feeding.import_snapshot("NL-AMS-01", NOW, [("A", 1)])
    [answer] = feeding.get_availability("A", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert answer.on_hand == 1


def test_deltas_apply_absolute_and_relative_changes(feeding: Client) -> None:
    acks = list(
        feeding.stream_deltas(
            [
                [delta("NL-AMS-01", "A", NOW - minutes(3), on_hand=10)],
                [
                    delta("NL-AMS-01", "A", NOW - minutes(2), adjustment=-3),
                    delta("NL-AMS-01", "N", NOW - minutes(2), adjustment=-1),
                ],
            ]
        )
    )
    assert [(a.batch_id, a.applied_count, a.stale_count, a.rejected_count) for a in acks] == [
        ("0", 1, 0, 0),
        ("1", 2, 0, 0),
    ]
    # A relative change to a record never seen starts from zero; POS stock may go negative.
    assert on_hand(feeding, "NL-AMS-01", "A", "N") == [7, -1]
    [n] = feeding.get_availability("N", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert n.available_to_sell == 0 and n.status == StockStatus.OUT_OF_STOCK


def test_bad_delta_records_are_reported_and_the_rest_applies(feeding: Client) -> None:
    no_time = DeltaRecord(location_id="NL-AMS-01", sku="B", on_hand=1)
    [ack] = feeding.stream_deltas(
        [
            [
                delta("NL-AMS-01", "A", NOW, on_hand=4),
                no_time,
                delta("NL-NOPE-01", "A", NOW, on_hand=4),
                delta("NL-RTM-01", "bad sku", NOW, on_hand=4),
                delta("NL-RTM-01", "C", NOW, on_hand=2),
            ]
        ]
    )
    assert (ack.applied_count, ack.stale_count, ack.rejected_count) == (2, 0, 3)
    assert [(r.index, r.field, r.reason) for r in ack.rejects] == [
        (1, "source_updated_at", "INVALID_FIELD"),
        (2, "location_id", "LOCATION_NOT_FOUND"),
        (3, "sku", "INVALID_FIELD"),
    ]
    assert on_hand(feeding, "NL-AMS-01", "A") == [4]
    assert on_hand(feeding, "NL-RTM-01", "C") == [2]


def test_each_field_of_a_delta_record_is_checked_and_described(feeding: Client) -> None:
    too_old = DeltaRecord(
        location_id="NL-AMS-01", sku="E", on_hand=1, source_updated_at=ts(NOW.replace(year=1999))
    )
    [ack] = feeding.stream_deltas(
        [
            [
                delta("NL-AMS-01", "A", NOW, adjustment=10**12 + 1),
                delta("NL-AMS-01", "B", NOW, on_hand=1, safety_stock=-1),
                delta("NL-AMS-01", "C", NOW, on_hand=1, source_sequence=-1),
                DeltaRecord(location_id="NL-AMS-01", sku="D", source_updated_at=ts(NOW)),
                too_old,
                delta("", "F", NOW, on_hand=1),
            ]
        ]
    )
    assert ack.applied_count == 0
    assert [(r.index, r.field, r.description) for r in ack.rejects] == [
        (0, "adjustment", "adjustment: must be within +-1,000,000,000,000"),
        (1, "safety_stock", "safety_stock: must be within [0, 1,000,000,000,000]"),
        (2, "source_sequence", "source_sequence: must not be negative"),
        (3, "on_hand", "on_hand: one of on_hand or adjustment is required"),
        (
            4,
            "source_updated_at",
            "source_updated_at: must be a time between the years 2000 and 2100",
        ),
        (5, "location_id", "location_id: is required"),
    ]


def test_a_delta_keeps_its_source_time_to_the_microsecond(feeding: Client) -> None:
    at = NOW.replace(microsecond=123_456)
    [ack] = feeding.stream_deltas(
        [[delta("NL-AMS-01", "A", at, on_hand=3, safety_stock=1, source_sequence=7)]]
    )
    assert ack.applied_count == 1
    [answer] = feeding.get_availability("A", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert answer.as_of.ToDatetime(tzinfo=NOW.tzinfo) == at
    assert (answer.on_hand, answer.safety_stock, answer.source_sequence) == (3, 1, 7)


def test_late_and_replayed_deltas_are_counted_stale(feeding: Client) -> None:
    first = [delta("NL-AMS-01", "A", NOW, on_hand=4)]
    late = [delta("NL-AMS-01", "A", NOW - minutes(1), adjustment=-1)]
    acks = list(feeding.stream_deltas([first, first, late]))
    assert [(a.applied_count, a.stale_count) for a in acks] == [(1, 0), (0, 1), (0, 1)]
    assert on_hand(feeding, "NL-AMS-01", "A") == [4]


def test_a_late_delta_for_a_sku_a_newer_snapshot_left_out_stays_zero(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW, [("A", 5)])
    [ack] = feeding.stream_deltas([[delta("NL-AMS-01", "B", NOW - minutes(1), on_hand=9)]])
    assert (ack.applied_count, ack.stale_count) == (0, 1)
    assert on_hand(feeding, "NL-AMS-01", "B") == [0]


def test_an_oversized_or_empty_delta_batch_ends_the_stream_with_invalid_argument(
    feeding: Client,
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        list(feeding.stream_deltas([[]]))
    assert [v.field for v in caught.value.field_violations] == ["records"]


def test_feed_status_reports_times_counts_and_freshness(feeding: Client, clock: FixedClock) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW - minutes(30), [("A", 5), ("B", 1)])
    list(
        feeding.stream_deltas(
            [
                [
                    delta("NL-AMS-01", "A", NOW - minutes(5), on_hand=4),
                    delta("NL-AMS-01", "A", NOW - minutes(6), on_hand=3),
                    DeltaRecord(
                        location_id="NL-AMS-01", sku="bad sku", on_hand=1, source_updated_at=ts(NOW)
                    ),
                ]
            ]
        )
    )
    status = feeding.get_feed_status("NL-AMS-01")
    assert status.last_snapshot_as_of.ToDatetime(NOW.tzinfo) == NOW - minutes(30)
    assert status.last_delta_source_at.ToDatetime(NOW.tzinfo) == NOW - minutes(5)
    assert status.last_delta_received_at.ToDatetime(NOW.tzinfo) == NOW
    assert (
        status.snapshot_count,
        status.delta_applied_count,
        status.stale_count,
        status.rejected_count,
    ) == (
        1,
        1,
        1,
        1,
    )
    assert status.record_count == 2
    assert status.freshness == FreshnessState.FRESH
    clock.now = NOW + timedelta(hours=25)
    assert feeding.get_feed_status("NL-AMS-01").freshness == FreshnessState.STALE
    assert feeding.get_feed_status("NL-RTM-01").freshness == FreshnessState.NEVER_REPORTED


def test_list_feed_status_pages_through_every_location(feeding: Client) -> None:
    statuses = list(feeding.list_feed_status(page_size=2))
    assert [s.location_id for s in statuses] == ["NL-AMS-01", "NL-RTM-01", "NL-WH-01"]
    with pytest.raises(NotFoundError):
        feeding.get_feed_status("NL-NOPE-01")


def test_export_streams_exact_stock_by_location_and_sku(feeding: Client) -> None:
    feeding.import_snapshot("NL-AMS-01", NOW, [(f"S{i:04d}", i) for i in range(2500)])
    feeding.import_snapshot("NL-RTM-01", NOW, [("A", 1)])
    exported = list(feeding.export_stock("NL-AMS-01"))
    assert len(exported) == 2500
    assert [a.sku for a in exported[:2]] == ["S0000", "S0001"]
    assert exported[7].on_hand == 7 and exported[7].exposure == Exposure.EXACT
    everything = list(feeding.export_stock())
    assert {a.location_id for a in everything} == {"NL-AMS-01", "NL-RTM-01"}


def test_a_sku_repeated_in_a_snapshot_is_set_by_its_greatest_record(feeding: Client) -> None:
    result = feeding.import_snapshot("NL-AMS-01", NOW, [("A", 5), ("B", 1), ("A", 9)])
    assert (result.received_count, result.applied_count, result.stale_count) == (3, 3, 0)
    assert on_hand(feeding, "NL-AMS-01", "A", "B") == [9, 1]
