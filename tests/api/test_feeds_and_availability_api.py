"""ApplyStockUpdates, GetAvailability and BatchGetAvailability through the SDK."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import minutes, store, update, warehouse
from google.protobuf.duration_pb2 import Duration
from omnistock.client import (
    Client,
    Exposure,
    InvalidArgumentError,
    NotFoundError,
    StockStatus,
)


@pytest.fixture
def stocked(client: Client) -> Client:
    client.upsert_locations([store("NL-AMS-01"), store("NL-RTM-01"), warehouse("NL-WH-01")])
    client.apply_stock_updates(
        [
            update("NL-AMS-01", "SKU-1", 10, NOW - minutes(5)),
            update("NL-RTM-01", "SKU-1", 2, NOW - minutes(5)),
            update("NL-WH-01", "SKU-1", 500, NOW - minutes(5), safety_stock=20),
            update("NL-AMS-01", "SKU-2", 0, NOW - minutes(5)),
        ]
    )
    return client


def test_exact_availability_shows_on_hand_reserved_safety_stock_and_ats(stocked: Client) -> None:
    [answer] = stocked.get_availability("SKU-1", ["NL-WH-01"], exposure=Exposure.EXACT)
    assert (answer.on_hand, answer.reserved, answer.safety_stock, answer.available_to_sell) == (
        500,
        0,
        20,
        480,
    )
    assert answer.status == StockStatus.IN_STOCK
    assert answer.as_of.ToDatetime().replace(tzinfo=NOW.tzinfo) == NOW - minutes(5)
    assert 0.9 < answer.confidence <= 1.0


def test_banded_is_the_default_and_carries_no_exact_quantity(stocked: Client) -> None:
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"])
    assert answer.exposure == Exposure.BANDED
    assert answer.status == StockStatus.IN_STOCK
    for field in ("available_to_sell", "on_hand", "reserved", "safety_stock"):
        assert not answer.HasField(field)
    assert answer.quantity_hint == "3+"


def test_availability_at_all_locations_is_ordered_by_id(stocked: Client) -> None:
    answers = stocked.get_availability("SKU-1")
    assert [(a.location_id, StockStatus(a.status)) for a in answers] == [
        ("NL-AMS-01", StockStatus.IN_STOCK),
        ("NL-RTM-01", StockStatus.LIMITED),
        ("NL-WH-01", StockStatus.IN_STOCK),
    ]


def test_availability_follows_the_requested_location_order(stocked: Client) -> None:
    answers = stocked.get_availability("SKU-2", ["NL-WH-01", "NL-AMS-01"])
    assert [(a.location_id, StockStatus(a.status)) for a in answers] == [
        ("NL-WH-01", StockStatus.OUT_OF_STOCK),
        ("NL-AMS-01", StockStatus.OUT_OF_STOCK),
    ]
    assert not answers[0].HasField("as_of")  # never reported there
    assert answers[1].HasField("as_of")


def test_a_record_past_its_freshness_budget_reads_unknown(
    stocked: Client, clock: FixedClock
) -> None:
    clock.now = NOW + timedelta(hours=25)
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"])
    assert answer.status == StockStatus.UNKNOWN
    assert answer.confidence == 0.0


def test_a_location_budget_shorter_than_the_default_applies(
    stocked: Client, clock: FixedClock
) -> None:
    stocked.upsert_locations([store("NL-AMS-01", freshness_budget=Duration(seconds=600))])
    clock.now = NOW + minutes(10)
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"])
    assert answer.status == StockStatus.UNKNOWN


def test_batch_answers_each_pair_in_request_order(stocked: Client) -> None:
    pairs = [
        ("SKU-2", "NL-AMS-01"),
        ("SKU-1", "NL-RTM-01"),
        ("SKU-1", "NL-AMS-01"),
        ("SKU-2", "NL-RTM-01"),
    ]
    answers = stocked.batch_get_availability(pairs, exposure=Exposure.EXACT)
    assert [(a.sku, a.location_id) for a in answers] == pairs
    assert [a.available_to_sell for a in answers] == [0, 2, 10, 0]


def test_unknown_sku_is_not_found(stocked: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        stocked.get_availability("SKU-NOPE")
    assert caught.value.reason == "SKU_NOT_FOUND"
    with pytest.raises(NotFoundError) as batch:
        stocked.batch_get_availability([("SKU-1", "NL-AMS-01"), ("SKU-NOPE", "NL-AMS-01")])
    assert batch.value.resource_names == ("SKU-NOPE",)


def test_unknown_location_is_not_found(stocked: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        stocked.get_availability("SKU-1", ["NL-AMS-01", "NL-NOPE-01"])
    assert caught.value.reason == "LOCATION_NOT_FOUND"
    assert caught.value.resource_names == ("NL-NOPE-01",)


def test_malformed_ids_and_oversized_batches_are_invalid(stocked: Client) -> None:
    with pytest.raises(InvalidArgumentError) as bad_sku:
        stocked.get_availability("no spaces please", ["NL-AMS-01", "NL-AMS-01"])
    assert {v.field for v in bad_sku.value.field_violations} == {"sku", "location_ids[1]"}
    with pytest.raises(InvalidArgumentError) as empty:
        stocked.batch_get_availability([])
    assert [v.field for v in empty.value.field_violations] == ["items"]
    with pytest.raises(InvalidArgumentError) as big:
        stocked.batch_get_availability([("SKU-1", "NL-AMS-01")] * 1001)
    assert [v.field for v in big.value.field_violations] == ["items"]
    assert "1,000" in big.value.field_violations[0].description


def test_updates_report_applied_and_stale_counts(stocked: Client) -> None:
    result = stocked.apply_stock_updates(
        [
            update("NL-AMS-01", "SKU-1", 7, NOW - minutes(1)),  # newer: applies
            update("NL-RTM-01", "SKU-1", 99, NOW - minutes(60)),  # older: stale
            update("NL-AMS-01", "SKU-3", 4, NOW),  # new sku: created
        ]
    )
    assert (result.applied_count, result.stale_count) == (2, 1)
    exact = stocked.batch_get_availability(
        [("SKU-1", "NL-AMS-01"), ("SKU-1", "NL-RTM-01"), ("SKU-3", "NL-AMS-01")],
        exposure=Exposure.EXACT,
    )
    assert [a.on_hand for a in exact] == [7, 2, 4]


def test_an_exact_replay_changes_nothing(stocked: Client) -> None:
    replay = stocked.apply_stock_updates([update("NL-AMS-01", "SKU-1", 10, NOW - minutes(5))])
    assert (replay.applied_count, replay.stale_count) == (0, 1)


def test_source_time_orders_first_and_sequence_orders_equal_times(stocked: Client) -> None:
    stocked.apply_stock_updates([update("NL-AMS-01", "SKU-9", 5, NOW, sequence=10)])
    # A later time wins whatever its sequence (time first: the old rule was not transitive).
    later = stocked.apply_stock_updates(
        [update("NL-AMS-01", "SKU-9", 6, NOW + minutes(1), sequence=9)]
    )
    assert later.applied_count == 1
    older = stocked.apply_stock_updates(
        [update("NL-AMS-01", "SKU-9", 8, NOW - minutes(1), sequence=11)]
    )
    assert older.stale_count == 1
    same_time = stocked.apply_stock_updates(
        [update("NL-AMS-01", "SKU-9", 2, NOW + minutes(1), sequence=10)]
    )
    assert same_time.applied_count == 1
    [answer] = stocked.get_availability("SKU-9", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert answer.on_hand == 2


def test_negative_on_hand_is_kept_but_ats_is_zero(stocked: Client) -> None:
    stocked.apply_stock_updates([update("NL-AMS-01", "SKU-1", -3, NOW)])
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert (answer.on_hand, answer.available_to_sell) == (-3, 0)
    assert answer.status == StockStatus.OUT_OF_STOCK


def test_a_batch_with_one_bad_update_writes_nothing(stocked: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        stocked.apply_stock_updates(
            [
                update("NL-AMS-01", "SKU-1", 1, NOW),
                update("NL-AMS-01", "SKU-1", 1, NOW, safety_stock=-1),
            ]
        )
    assert [v.field for v in caught.value.field_violations] == ["updates[1].safety_stock"]
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert answer.on_hand == 10


def test_a_batch_naming_an_unknown_location_writes_nothing(stocked: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        stocked.apply_stock_updates(
            [update("NL-AMS-01", "SKU-1", 1, NOW), update("NL-NOPE-01", "SKU-1", 1, NOW)]
        )
    assert caught.value.resource_names == ("NL-NOPE-01",)
    [answer] = stocked.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert answer.on_hand == 10


def test_update_without_source_time_or_with_bad_ids_is_invalid(stocked: Client) -> None:
    missing_time = update("NL-AMS-01", "SKU-1", 1, NOW)
    missing_time.ClearField("source_updated_at")
    with pytest.raises(InvalidArgumentError) as caught:
        stocked.apply_stock_updates([missing_time, update("", "bad sku", 1, NOW)])
    assert {v.field for v in caught.value.field_violations} == {
        "updates[0].source_updated_at",
        "updates[1].location_id",
        "updates[1].sku",
    }
    with pytest.raises(InvalidArgumentError):
        stocked.apply_stock_updates([])


def test_a_read_after_a_write_sees_the_write_even_when_the_old_value_was_cached(
    stocked: Client,
) -> None:
    for _ in range(3):  # warm the hot-read cache
        stocked.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
        stocked.batch_get_availability([("SKU-1", "NL-AMS-01")], exposure=Exposure.EXACT)
    stocked.apply_stock_updates([update("NL-AMS-01", "SKU-1", 1, NOW)])
    [single] = stocked.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
    [batch] = stocked.batch_get_availability([("SKU-1", "NL-AMS-01")], exposure=Exposure.EXACT)
    assert single.on_hand == batch.on_hand == 1
