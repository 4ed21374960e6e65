"""Pre-orders and back-orders through the SDK, on SQLite and PostgreSQL: in a channel that
sells incoming, a network hold no location can cover from stock may take incoming supply
still counting at one location, never more than is not yet held; once the incoming's date
passes, what a hold took from it becomes a hold of the stock the feed brought in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import FixedClock
from network_shop import Shop
from omnistock.client import (
    AlreadyExistsError,
    ChannelMethod,
    Client,
    FailedPreconditionError,
    ReservationMethod,
)
from omnistock.server.testing import InProcessServer

CHECKOUT = ReservationMethod.CHECKOUT


@pytest.fixture
def shop(server: InProcessServer, client: Client, clock: FixedClock) -> Iterator[Shop]:
    yield Shop(server, client, clock)


def pre_order(client: Client, lines: dict[str, int]):  # type: ignore[no-untyped-def]
    return client.create_reservation(
        "", lines, method=CHECKOUT, channel="web", ttl=timedelta(hours=2)
    )


def test_a_pre_order_takes_from_stock_what_it_can_and_the_rest_from_incoming(shop: Shop) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 2})
    shop.incoming("W1", "A", "po-1", 5, shop.today() + timedelta(days=10))
    shop.channel("W1", sells_incoming=True)
    made = pre_order(shop.client, {"A": 4})
    assert made.location_id == "W1"
    assert [(x.sku, x.quantity, x.incoming_quantity) for x in made.lines] == [("A", 4, 2)]
    assert shop.ats("W1", "A") == 0  # the stock part is held; the incoming part is not stock
    with pytest.raises(FailedPreconditionError):
        pre_order(shop.client, {"A": 4})  # 3 incoming left
    assert pre_order(shop.client, {"A": 3}).lines[0].incoming_quantity == 3


def test_stock_is_preferred_to_incoming(shop: Shop) -> None:
    shop.warehouses("W1", "W2")
    shop.stock({("W1", "A"): 3, ("W2", "A"): 0})
    shop.incoming("W2", "A", "po-1", 50, shop.today() + timedelta(days=3))
    shop.channel("W1", "W2", sells_incoming=True)
    made = pre_order(shop.client, {"A": 3})
    assert made.location_id == "W1" and made.lines[0].incoming_quantity == 0


def test_a_channel_that_does_not_sell_incoming_takes_none(shop: Shop) -> None:
    shop.warehouses("W1")
    shop.incoming("W1", "A", "po-1", 5, shop.today() + timedelta(days=10))
    shop.channel("W1", sells_incoming=False)
    with pytest.raises(FailedPreconditionError):
        pre_order(shop.client, {"A": 1})


def test_incoming_whose_date_has_passed_is_not_taken(shop: Shop) -> None:
    shop.warehouses("W1")
    shop.incoming("W1", "A", "po-1", 5, shop.today() - timedelta(days=1))
    shop.channel("W1", sells_incoming=True)
    with pytest.raises(FailedPreconditionError):
        pre_order(shop.client, {"A": 1})


def test_concurrent_pre_orders_never_oversell_one_incoming_line(
    shop: Shop, server: InProcessServer
) -> None:
    shop.warehouses("W1")
    shop.incoming("W1", "A", "po-1", 5, shop.today() + timedelta(days=10))
    shop.channel("W1", sells_incoming=True)
    shoppers = 16
    start, lock = threading.Barrier(shoppers), threading.Lock()
    taken: list[int] = []

    def buy() -> None:
        with Client(server.target, timeout=60) as client:
            client.get_location("W1")
            start.wait()
            try:
                made = pre_order(client, {"A": 1})
            except FailedPreconditionError:
                return
            with lock:
                taken.append(made.lines[0].incoming_quantity)

    threads = [threading.Thread(target=buy) for _ in range(shoppers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken == [1] * 5


def test_when_the_date_passes_a_pre_order_holds_the_stock_that_arrived(
    shop: Shop, server: InProcessServer, clock: FixedClock
) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 0})
    due = shop.today() + timedelta(days=1)
    shop.incoming("W1", "A", "po-1", 5, due)
    shop.channel("W1", sells_incoming=True)
    made = shop.client.create_reservation(
        "", {"A": 3}, method=ReservationMethod.PICKUP, channel="web", ttl=timedelta(hours=72)
    )
    assert made.lines[0].incoming_quantity == 3
    clock.now += timedelta(days=2)  # the date has passed; the feed brings what arrived
    shop.stock({("W1", "A"): 5})
    assert server.server is not None
    server.server.reservations.expire_due()  # the sweeper's round
    after = shop.client.get_reservation(made.reservation_id)
    assert after.lines[0].incoming_quantity == 0 and after.holds_stock
    assert shop.ats("W1", "A") == 2  # 5 arrived, 3 of them held by the pre-order
    shop.client.release_reservation(made.reservation_id)
    assert shop.ats("W1", "A") == 5


def test_a_feed_that_cuts_incoming_below_what_holds_take_turns_the_excess_into_a_stock_hold(
    shop: Shop, server: InProcessServer, clock: FixedClock
) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 4})
    shop.incoming("W1", "A", "po-1", 5, shop.today() + timedelta(days=10))
    shop.channel("W1", sells_incoming=True)
    made = pre_order(shop.client, {"A": 9})  # 4 from stock, 5 from incoming
    assert made.lines[0].incoming_quantity == 5
    clock.now += timedelta(minutes=1)
    shop.incoming("W1", "A", "po-1", 2, shop.today() + timedelta(days=10))  # cut to 2
    assert server.server is not None
    server.server.reservations.expire_due()
    after = shop.client.get_reservation(made.reservation_id)
    assert after.lines[0].incoming_quantity == 2  # 3 moved to a hold of stock


def test_a_committed_pre_order_is_not_settled_by_a_feed_update(
    shop: Shop, clock: FixedClock
) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 0})
    shop.incoming("W1", "A", "po-1", 5, shop.today() + timedelta(days=10))
    shop.channel("W1", sells_incoming=True)
    made = pre_order(shop.client, {"A": 2})
    shop.client.commit_reservation(made.reservation_id)
    clock.now += timedelta(minutes=5)
    shop.stock({("W1", "A"): 0})  # a newer record: nothing of the pre-order was sold from it
    assert shop.client.get_reservation(made.reservation_id).holds_stock
    with pytest.raises(FailedPreconditionError):
        pre_order(shop.client, {"A": 4})  # the committed pre-order still takes 2 of the 5


def test_the_idempotency_fingerprint_covers_the_channel_method(shop: Shop) -> None:
    shop.stores("S1", ship=True)
    shop.stock({("S1", "A"): 5})
    shop.channel("S1")
    shop.client.create_reservation(
        "", {"A": 1}, method=CHECKOUT, channel="web", idempotency_key="k1"
    )
    with pytest.raises(AlreadyExistsError) as reused:
        shop.client.create_reservation(
            "", {"A": 1}, method=CHECKOUT, channel="web", idempotency_key="k1",
            channel_method=ChannelMethod.PICKUP,
        )  # fmt: skip
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
