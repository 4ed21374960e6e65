"""Channel answers through GetAvailability and BatchGetAvailability, on both databases:
the terms of docs/channels.md "Channel answers", the errors, and that time alone (a record
going stale, a hold lapsing, an incoming date passing) changes a kept answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from channel_setup import S1, S2, W1, Channels, incoming, network, pre_order, web
from conftest import NOW, FixedClock
from factories import update
from omnistock.client import AsyncClient, ChannelMethod, Client, Exposure
from omnistock.server.domain.channels import ChannelMethod as DomainMethod
from omnistock.server.testing import InProcessServer
from omnistock.v1 import channel_pb2, common_pb2

BEFORE = NOW - timedelta(minutes=5)
IN_STOCK = common_pb2.STOCK_STATUS_IN_STOCK
LIMITED = common_pb2.STOCK_STATUS_LIMITED
OUT = common_pb2.STOCK_STATUS_OUT_OF_STOCK
UNKNOWN = common_pb2.STOCK_STATUS_UNKNOWN
PICKUP = channel_pb2.CHANNEL_METHOD_PICKUP


@pytest.fixture
def shop(client: Client, server: InProcessServer) -> Iterator[Channels]:
    network(client)
    web(server)
    client.apply_stock_updates(
        [
            update(W1, "PHONE", 10, BEFORE),
            update(S1, "PHONE", 5, BEFORE - timedelta(minutes=10)),
            update(S2, "PHONE", 4, BEFORE),
            update(S2, "CASE", 7, BEFORE),
        ]
    )
    channels = Channels(server.target)
    yield channels
    channels.close()


def code_of(call: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return call.value.code()  # type: ignore[attr-defined,no-any-return]


def test_available_to_fulfil_sums_channel_ats_after_protection_over_shipping_locations(
    shop: Channels,
) -> None:
    answer = shop.get("PHONE")
    # SHIP: the warehouse's 10 (no protection) and the shipping store's 5 - 2; the
    # pickup-only store contributes nothing.
    assert answer.available_to_fulfil == 13
    assert answer.status == IN_STOCK
    assert [(q.location_id, q.quantity) for q in answer.locations] == [(W1, 10), (S1, 3)]
    assert answer.contributing_location_count == 2
    assert answer.method == channel_pb2.CHANNEL_METHOD_SHIP and answer.quantity == 1
    assert answer.fulfillable and answer.available_from == NOW.date().isoformat()
    assert answer.available_from_text == ""


def test_the_sdk_gives_the_channel_answer(client: Client, shop: Channels) -> None:
    answer = client.get_channel_availability(
        "PHONE", "web", method=ChannelMethod.PICKUP, quantity=5, exposure=Exposure.EXACT
    )
    assert answer.available_to_fulfil == 5 and answer.fulfillable
    banded = client.get_channel_availability("PHONE", "web")
    assert banded.status == IN_STOCK and not banded.HasField("available_to_fulfil")
    # The location call returns what it did.
    assert [a.location_id for a in client.get_availability("PHONE", [W1])] == [W1]


def test_the_async_sdk_gives_the_channel_answer(server: InProcessServer, shop: Channels) -> None:
    async def main() -> int:
        async with AsyncClient(server.target) as client:
            answer = await client.get_channel_availability("PHONE", "web", exposure=Exposure.EXACT)
            return answer.available_to_fulfil

    assert asyncio.run(main()) == 13


def test_pickup_counts_the_stores_of_the_group_that_hand_over(shop: Channels) -> None:
    answer = shop.get("PHONE", method=PICKUP)
    assert answer.available_to_fulfil == 3 + 2
    assert {q.location_id for q in answer.locations} == {S1, S2}


def test_as_of_is_the_oldest_time_among_records_that_contribute(shop: Channels) -> None:
    answer = shop.get("PHONE")
    assert answer.as_of.ToDatetime().replace(tzinfo=NOW.tzinfo) == BEFORE - timedelta(minutes=10)


def test_a_protection_above_stock_reads_zero_not_an_error(
    client: Client, server: InProcessServer, shop: Channels
) -> None:
    web(server, default_protection=50)
    client.apply_stock_updates([update(W1, "PHONE", 0, NOW)])
    answer = shop.get("PHONE")
    assert answer.available_to_fulfil == 0 and answer.status == OUT
    assert not answer.fulfillable


def test_banded_answers_carry_no_count_and_a_hint(shop: Channels) -> None:
    answer = shop.get("PHONE", exact=False)
    assert answer.status == IN_STOCK and answer.quantity_hint == "3+"
    assert not answer.HasField("available_to_fulfil")
    assert not answer.HasField("available_to_order")
    assert not answer.locations and answer.contributing_location_count == 0
    # The band's depth (0.875 at threshold 3) times the mean freshness of the records.
    assert 0 < answer.confidence <= 0.875


def test_incoming_gives_available_to_order_and_the_date_it_can_be_had(
    server: InProcessServer, shop: Channels
) -> None:
    due = date(2026, 12, 12)
    incoming(server, W1, "PHONE", "PO-1", 20, due)
    answer = shop.get("PHONE", quantity=30)
    assert answer.available_to_order == 13 + 20
    assert answer.available_from == "2026-12-12"
    assert answer.available_from_text == "available from 12 Dec"
    assert not answer.fulfillable


def test_pre_order_holds_consume_incoming(server: InProcessServer, shop: Channels) -> None:
    incoming(server, W1, "PHONE", "PO-1", 20, date(2026, 12, 12))
    pre_order(server, "hold-1", W1, "PHONE", 15, NOW + timedelta(minutes=30))
    answer = shop.get("PHONE", quantity=30)
    assert answer.available_to_order == 13 + 20 - 15
    assert answer.available_from == ""  # 18 is all it can ever have


def test_a_committed_pre_order_still_consumes_incoming_after_its_hold_time(
    server: InProcessServer, shop: Channels, clock: FixedClock
) -> None:
    incoming(server, W1, "PHONE", "PO-1", 20, date(2026, 12, 12))
    pre_order(server, "hold-1", W1, "PHONE", 15, NOW + timedelta(minutes=1), state="COMMITTED")
    clock.now = NOW + timedelta(minutes=5)
    assert shop.get("PHONE").available_to_order == 13 + 20 - 15


def test_a_stock_hold_lapsing_changes_the_answer_without_a_write(
    client: Client, shop: Channels, clock: FixedClock
) -> None:
    hold = client.create_reservation(W1, {"PHONE": 4}, ttl=timedelta(minutes=10))
    answer = shop.get("PHONE")
    assert answer.available_to_fulfil == 13 - 4
    lapses = hold.expire_time.ToDatetime().replace(tzinfo=NOW.tzinfo)
    assert answer.valid_until.ToDatetime().replace(tzinfo=NOW.tzinfo) == lapses
    clock.now = lapses
    assert shop.get("PHONE").available_to_fulfil == 13


def test_a_channel_that_does_not_sell_incoming_gives_no_date_past_its_stock(
    server: InProcessServer, shop: Channels
) -> None:
    web(server, sells_incoming=False)
    incoming(server, W1, "PHONE", "PO-1", 20, date(2026, 12, 12))
    answer = shop.get("PHONE", quantity=30)
    assert not answer.HasField("available_to_order") and answer.available_from == ""


def test_a_feed_write_shows_in_the_next_answer(client: Client, shop: Channels) -> None:
    assert shop.get("PHONE").available_to_fulfil == 13
    client.apply_stock_updates([update(S1, "PHONE", 9, NOW)])
    assert shop.get("PHONE").available_to_fulfil == 17


def test_a_record_going_stale_changes_the_answer_without_a_write(
    shop: Channels, clock: FixedClock
) -> None:
    first = shop.get("PHONE")
    # The shipping store's record is the oldest: it goes stale first, at valid_until.
    until = first.valid_until.ToDatetime().replace(tzinfo=NOW.tzinfo)
    assert until == BEFORE - timedelta(minutes=10) + timedelta(hours=24, microseconds=1)
    clock.now = until
    assert shop.get("PHONE").available_to_fulfil == 10


def test_a_hold_lapsing_changes_the_answer_without_a_write(
    server: InProcessServer, shop: Channels, clock: FixedClock
) -> None:
    incoming(server, W1, "PHONE", "PO-1", 20, date(2026, 12, 12))
    lapses = NOW + timedelta(minutes=30)
    pre_order(server, "hold-1", W1, "PHONE", 15, lapses)
    assert shop.get("PHONE").available_to_order == 18
    assert shop.get("PHONE").valid_until.ToDatetime().replace(tzinfo=NOW.tzinfo) == lapses
    clock.now = lapses
    assert shop.get("PHONE").available_to_order == 33


def test_an_incoming_date_passing_changes_the_answer_without_a_write(
    server: InProcessServer, shop: Channels, clock: FixedClock
) -> None:
    incoming(server, W1, "PHONE", "PO-1", 20, NOW.date())
    assert shop.get("PHONE").available_to_order == 33
    # It counts on its date, and no longer from the start of the day after (UTC here).
    clock.now = NOW + timedelta(hours=11, minutes=59)
    assert shop.get("PHONE").available_to_order == 33
    clock.now = NOW + timedelta(hours=12)
    assert shop.get("PHONE").available_to_order == 13


def test_the_day_passing_moves_available_from_without_a_write(
    shop: Channels, clock: FixedClock
) -> None:
    assert shop.get("PHONE").available_from == NOW.date().isoformat()
    clock.now = NOW + timedelta(hours=12)  # midnight UTC
    assert shop.get("PHONE").available_from == (NOW.date() + timedelta(days=1)).isoformat()


def test_every_contributing_record_stale_reads_unknown(shop: Channels, clock: FixedClock) -> None:
    clock.now = NOW + timedelta(days=2)
    answer = shop.get("PHONE")
    assert answer.status == UNKNOWN and not answer.HasField("as_of")
    assert answer.confidence == 0.0 and answer.available_from == ""


def test_a_batch_answers_channel_items_in_request_order(shop: Channels) -> None:
    items = [
        channel_pb2.SkuChannel(sku="CASE", channel_id="web", method=PICKUP),
        channel_pb2.SkuChannel(sku="PHONE", channel_id="web"),
        channel_pb2.SkuChannel(sku="CASE", channel_id="web"),
    ] * 300
    response = shop.batch(items)
    assert [(a.sku, a.method) for a in response.channel_availabilities] == [
        (i.sku, i.method or channel_pb2.CHANNEL_METHOD_SHIP) for i in items
    ]
    assert [a.available_to_fulfil for a in response.channel_availabilities[:3]] == [5, 13, 0]


def test_an_unknown_channel_is_not_found(shop: Channels) -> None:
    with pytest.raises(grpc.RpcError) as call:
        shop.get("PHONE", "kiosk")
    assert code_of(call) == grpc.StatusCode.NOT_FOUND
    assert "CHANNEL_NOT_FOUND" in str(call.value.trailing_metadata())  # type: ignore[attr-defined]


def test_one_unknown_channel_fails_a_batch_naming_its_item(shop: Channels) -> None:
    items = [channel_pb2.SkuChannel(sku="PHONE", channel_id="web")] * 3
    items.append(channel_pb2.SkuChannel(sku="PHONE", channel_id="kiosk"))
    with pytest.raises(grpc.RpcError) as call:
        shop.batch(items)
    assert code_of(call) == grpc.StatusCode.NOT_FOUND
    assert "channel_items[3].channel_id" in call.value.details()  # type: ignore[attr-defined]


def test_an_unknown_sku_is_not_found(shop: Channels) -> None:
    with pytest.raises(grpc.RpcError) as call:
        shop.get("NOPE")
    assert code_of(call) == grpc.StatusCode.NOT_FOUND


def test_a_method_the_channel_does_not_offer_fails_its_precondition(
    server: InProcessServer, shop: Channels
) -> None:
    web(server, methods=frozenset({DomainMethod.SHIP}))
    with pytest.raises(grpc.RpcError) as call:
        shop.get("PHONE", method=PICKUP)
    assert code_of(call) == grpc.StatusCode.FAILED_PRECONDITION
    assert "METHOD_NOT_OFFERED" in str(call.value.trailing_metadata())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"location_ids": (W1,)}, "location_ids"),
        ({"quantity": -1}, "quantity"),
        ({"method": 7}, "method"),
        ({"quantity": 10**12 + 1}, "quantity"),
    ],
)
def test_bad_channel_requests_get_field_violations(
    shop: Channels, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as call:
        shop.get("PHONE", **kwargs)  # type: ignore[arg-type]
    assert code_of(call) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in call.value.details()  # type: ignore[attr-defined]


def test_a_batch_holds_at_most_a_thousand_pairs_in_all(shop: Channels) -> None:
    items = [channel_pb2.SkuChannel(sku="PHONE", channel_id="web")] * 1_001
    with pytest.raises(grpc.RpcError) as call:
        shop.batch(items)
    assert code_of(call) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_total_is_built_on_the_channel_as_it_stands_not_as_the_read_found_it(
    server: InProcessServer, shop: Channels
) -> None:
    # A read resolves its channel, then builds the total it misses on a database thread;
    # a channel change between the two must not leave a total of the old channel kept
    # under the new one (it would stand for minutes).
    assert shop.get("PHONE").available_to_fulfil == 13
    app = server.server
    assert app is not None
    queries = app.reads._channels
    assert queries is not None
    cached, before = queries._directory.cached("web")
    assert cached and before is not None
    web(server, default_protection=0)  # S1 now gives all 5: 15
    total = queries.build(before, "PHONE", DomainMethod.SHIP)
    assert sum(c.quantity for c in total.contributions) == 15
    assert shop.get("PHONE").available_to_fulfil == 15


def test_a_kept_totals_contributions_are_left_alone_by_the_garbage_collector(
    server: InProcessServer, shop: Channels
) -> None:
    import gc

    assert shop.get("PHONE").available_to_fulfil == 13
    app = server.server
    assert app is not None and app.reads._channels is not None
    total = app.reads._channels._totals.get(("web", "PHONE", DomainMethod.SHIP), NOW)
    assert total is not None and len(total.rows) == 2
    gc.collect()
    assert not any(gc.is_tracked(row) for row in total.rows)
    assert sorted((c.location_id, c.quantity) for c in total.contributions) == [(S1, 3), (W1, 10)]


def test_a_kept_answer_is_encoded_once_until_its_total_is_rebuilt(
    client: Client, shop: Channels, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnistock.server.transport import channel_answers

    built: list[str] = []
    build = channel_answers.reply_to_proto

    def counting(reply: Any) -> Any:
        built.append(reply.item.sku)
        return build(reply)

    monkeypatch.setattr(channel_answers, "reply_to_proto", counting)
    assert shop.get("PHONE").available_to_fulfil == 13
    assert shop.get("PHONE").available_to_fulfil == 13
    assert shop.get("PHONE", quantity=2).available_to_fulfil == 13  # another answer
    assert built == ["PHONE", "PHONE"]
    client.apply_stock_updates([update(S1, "PHONE", 9, NOW)])
    assert shop.get("PHONE").available_to_fulfil == 17  # the total was rebuilt
    assert built == ["PHONE", "PHONE", "PHONE"]
