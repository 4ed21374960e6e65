"""Network holds through the SDK, on SQLite and PostgreSQL: a hold named by a channel is
placed at one location of its group by the placement rule, never oversells, keeps the
TTL and idempotency rules, and can move, all or nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import FixedClock
from network_shop import ROTTERDAM, UTRECHT, Shop
from omnistock.client import (
    ChannelMethod,
    Client,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ReservationMethod,
    origin,
)
from omnistock.server.config import ServerConfig
from omnistock.server.domain.channels import ChannelMethod as Sells
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure as DomainExposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

CHECKOUT = ReservationMethod.CHECKOUT


@pytest.fixture
def shop(server: InProcessServer, client: Client, clock: FixedClock) -> Iterator[Shop]:
    yield Shop(server, client, clock)


def hold(shop: Shop, lines: dict[str, int], **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("channel", "web")
    return shop.client.create_reservation("", lines, method=CHECKOUT, **kwargs)  # type: ignore[arg-type]


def test_a_network_hold_goes_to_the_location_nearest_the_origin(shop: Shop) -> None:
    shop.stores("AMS")
    shop.stores("RTM", at=ROTTERDAM)
    shop.stores("UTR", at=UTRECHT)
    shop.stock({("AMS", "A"): 9, ("RTM", "A"): 2, ("UTR", "A"): 5})
    shop.channel("AMS", "RTM", "UTR")
    near_rotterdam = origin(latitude=51.9, longitude=4.5)
    placed = hold(shop, {"A": 2}, channel_method=ChannelMethod.PICKUP, origin=near_rotterdam)
    assert placed.location_id == "RTM"
    assert placed.channel_id == "web" and placed.channel_method == ChannelMethod.PICKUP
    # Rotterdam has nothing left: the next nearest that covers the line.
    again = hold(shop, {"A": 2}, channel_method=ChannelMethod.PICKUP, origin=near_rotterdam)
    assert again.location_id == "UTR"


def test_without_an_origin_the_most_channel_ats_wins_warehouses_first_for_ship(
    shop: Shop,
) -> None:
    shop.stores("S-SHIPS", ship=True)
    shop.warehouses("W1", "W2")
    shop.stock({("S-SHIPS", "A"): 50, ("W1", "A"): 4, ("W2", "A"): 7})
    shop.channel("S-SHIPS", "W1", "W2")
    assert hold(shop, {"A": 1}).location_id == "W2"  # a warehouse, though the store has more
    # A warehouse that cannot cover the line is passed over for the store.
    assert hold(shop, {"A": 7}).location_id == "S-SHIPS"
    # PICKUP: stores only (a warehouse hands nothing over).
    assert hold(shop, {"A": 1}, channel_method=ChannelMethod.PICKUP).location_id == "S-SHIPS"


def test_channel_holds_respect_protection_but_location_holds_do_not(shop: Shop) -> None:
    shop.stores("AMS")
    shop.stock({("AMS", "A"): 5})
    shop.channel("AMS", protection={"AMS": 3})
    with pytest.raises(FailedPreconditionError) as refused:
        hold(shop, {"A": 3}, channel_method=ChannelMethod.PICKUP)
    assert refused.value.reason == "INSUFFICIENT_STOCK"
    assert hold(shop, {"A": 2}, channel_method=ChannelMethod.PICKUP).location_id == "AMS"
    # The 3 protected units stay for walk-in shoppers: a hold at the store takes them.
    shop.client.create_reservation("AMS", {"A": 3}, method=CHECKOUT)
    assert shop.ats("AMS", "A") == 0


def test_a_network_hold_is_all_or_nothing_and_its_refusal_names_no_count(shop: Shop) -> None:
    shop.stores("AMS", "UTR")
    shop.stock({("AMS", "A"): 5, ("UTR", "B"): 5})
    shop.channel("AMS", "UTR")
    with pytest.raises(FailedPreconditionError) as refused:
        hold(shop, {"A": 1, "B": 1}, channel_method=ChannelMethod.PICKUP)
    assert [(v.subject, v.description) for v in refused.value.precondition_violations] == [
        ("A", "requested 1, not available"),
        ("B", "requested 1, not available"),
    ]
    assert "5" not in str(refused.value)
    assert shop.ats("AMS", "A") == 5 and shop.ats("UTR", "B") == 5  # nothing held


def test_concurrent_network_holds_never_oversell(shop: Shop, server: InProcessServer) -> None:
    shop.stores("AMS", "UTR")
    shop.stock({("AMS", "A"): 6, ("UTR", "A"): 6})
    shop.channel("AMS", "UTR", protection={"AMS": 1, "UTR": 1})
    shoppers, start, lock = 24, threading.Barrier(24), threading.Lock()
    held: list[str] = []

    def buy() -> None:
        with Client(server.target, timeout=60) as client:
            client.get_location("AMS")
            start.wait()
            try:
                made = client.create_reservation(
                    "",
                    {"A": 1},
                    method=CHECKOUT,
                    channel="web",
                    channel_method=ChannelMethod.PICKUP,
                )
            except FailedPreconditionError:
                return
            with lock:
                held.append(made.location_id)

    threads = [threading.Thread(target=buy) for _ in range(shoppers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(held) == ["AMS"] * 5 + ["UTR"] * 5  # 6 each, less 1 protected
    assert shop.ats("AMS", "A") == 1 and shop.ats("UTR", "A") == 1


def test_an_idempotent_retry_returns_the_same_hold_even_after_stock_moved(shop: Shop) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 3})
    shop.channel("W1")
    first = hold(shop, {"A": 3}, idempotency_key="basket-1")
    shop.stock({("W1", "A"): 0})
    again = hold(shop, {"A": 3}, idempotency_key="basket-1")
    assert again.reservation_id == first.reservation_id and again.location_id == "W1"


def test_a_network_hold_keeps_the_methods_ttl(shop: Shop, clock: FixedClock) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 3})
    shop.channel("W1")
    made = hold(shop, {"A": 1}, ttl=timedelta(minutes=5))
    assert made.expire_time.ToDatetime() - made.create_time.ToDatetime() == timedelta(minutes=5)
    clock.now += timedelta(minutes=6)
    assert shop.ats("W1", "A") == 3  # the lapsed hold no longer counts


def test_a_channel_and_a_location_together_are_invalid(shop: Shop) -> None:
    shop.warehouses("W1")
    shop.channel("W1")
    with pytest.raises(InvalidArgumentError) as refused:
        shop.client.create_reservation("W1", {"A": 1}, method=CHECKOUT, channel="web")
    assert [v.field for v in refused.value.field_violations] == ["location_id"]


def test_an_unknown_channel_is_not_found_and_a_method_not_offered_is_refused(
    shop: Shop,
) -> None:
    shop.warehouses("W1")
    shop.stock({("W1", "A"): 3})
    shop.channel("W1", methods=frozenset({Sells.SHIP}))
    with pytest.raises(NotFoundError) as missing:
        hold(shop, {"A": 1}, channel="nope")
    assert missing.value.reason == "CHANNEL_NOT_FOUND"
    with pytest.raises(FailedPreconditionError) as refused:
        hold(shop, {"A": 1}, channel_method=ChannelMethod.PICKUP)
    assert refused.value.reason == "METHOD_NOT_OFFERED"


def test_a_hold_moves_all_or_nothing_to_a_location_that_covers_it(shop: Shop) -> None:
    shop.stores("AMS", "UTR", "RTM")
    shop.stock({("AMS", "A"): 5, ("UTR", "A"): 2, ("RTM", "A"): 1})
    shop.channel("AMS", "UTR", "RTM")
    made = hold(shop, {"A": 2}, channel_method=ChannelMethod.PICKUP)
    assert made.location_id == "AMS" and shop.ats("AMS", "A") == 3
    moved = shop.client.move_reservation(made.reservation_id, "UTR")
    assert moved.location_id == "UTR" and moved.reservation_id == made.reservation_id
    assert (shop.ats("AMS", "A"), shop.ats("UTR", "A")) == (5, 0)
    with pytest.raises(FailedPreconditionError):
        shop.client.move_reservation(made.reservation_id, "RTM")  # 1 < 2
    stayed = shop.client.get_reservation(made.reservation_id)
    assert stayed.location_id == "UTR" and (shop.ats("UTR", "A"), shop.ats("RTM", "A")) == (0, 1)
    # Without a location the server picks the best other one.
    assert shop.client.move_reservation(made.reservation_id).location_id == "AMS"


def test_only_an_active_network_hold_moves(shop: Shop) -> None:
    shop.stores("AMS", "UTR")
    shop.stock({("AMS", "A"): 5, ("UTR", "A"): 5})
    shop.channel("AMS", "UTR")
    at_store = shop.client.create_reservation("AMS", {"A": 1}, method=CHECKOUT)
    with pytest.raises(FailedPreconditionError) as refused:
        shop.client.move_reservation(at_store.reservation_id, "UTR")
    assert refused.value.reason == "NOT_A_NETWORK_HOLD"
    released = hold(shop, {"A": 1}, channel_method=ChannelMethod.PICKUP)
    shop.client.release_reservation(released.reservation_id)
    with pytest.raises(FailedPreconditionError) as ended:
        shop.client.move_reservation(released.reservation_id, "UTR")
    assert ended.value.reason == "RESERVATION_STATE"


def test_a_key_scoped_to_locations_places_network_holds_in_its_scope_only(
    database_url: str, clock: FixedClock
) -> None:
    settings = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(settings, clock=clock) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)

        def key(*roles: Role, locations: list[str] | None = None) -> str:
            _, text = keys.create(
                "k", roles, locations=locations, exposure=DomainExposure.EXACT,
                rate_per_second=1000.0, burst=1000, now=clock(),
            )  # fmt: skip
            return text

        with Client(server.target, api_key=key(Role.ADMIN)) as admin:
            shop = Shop(server, admin, clock)
            shop.stores("AMS", "UTR")
            shop.stock({("AMS", "A"): 9, ("UTR", "A"): 2})
            shop.channel("AMS", "UTR")
        with Client(server.target, api_key=key(Role.RESERVE, locations=["UTR"])) as scoped:
            made = scoped.create_reservation(
                "", {"A": 1}, method=CHECKOUT, channel="web", channel_method=ChannelMethod.PICKUP
            )
            assert made.location_id == "UTR"  # AMS has more, but the key may not see it
            with pytest.raises(FailedPreconditionError):
                scoped.create_reservation(
                    "", {"A": 3}, method=CHECKOUT, channel="web",
                    channel_method=ChannelMethod.PICKUP,
                )  # fmt: skip
