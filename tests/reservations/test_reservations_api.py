"""Reservations through the SDK, on both databases: holds, states, TTLs, idempotency,
and how holds meet reads and feeds.

The clock stands at NOW (tests move it); stock is reported a minute before.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, FixedClock
from factories import store, update
from omnistock.client import (
    AlreadyExistsError,
    Client,
    Exposure,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ReservationMethod,
    ReservationState,
)
from omnistock.server.testing import InProcessServer

STORE = "NL-AMS-01"
BEFORE = NOW - timedelta(minutes=1)


@pytest.fixture
def shop(client: Client) -> Client:
    client.upsert_locations([store(STORE), store("NL-UTR-01")])
    client.apply_stock_updates(
        [update(STORE, "PHONE", 5, BEFORE), update(STORE, "CASE", 2, BEFORE)]
    )
    return client


def ats(client: Client, sku: str = "PHONE", location: str = STORE) -> int:
    (answer,) = client.get_availability(sku, [location], exposure=Exposure.EXACT)
    return answer.available_to_sell


def state(reservation: object) -> str:
    return ReservationState(reservation.state).name  # type: ignore[attr-defined]


def test_a_hold_lowers_available_to_sell_at_once(shop: Client) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 2, "CASE": 1}, customer_reference="order-1")
    assert state(made) == "ACTIVE" and made.holds_stock
    assert made.reservation_id.startswith("rsv_")
    assert [(x.sku, x.quantity) for x in made.lines] == [("CASE", 1), ("PHONE", 2)]
    assert made.expire_time.ToDatetime(NOW.tzinfo) == NOW + timedelta(hours=2)  # pickup default
    assert ats(shop) == 3 and ats(shop, "CASE") == 1
    (answer,) = shop.get_availability("PHONE", [STORE], exposure=Exposure.EXACT)
    assert answer.reserved == 2 and answer.on_hand == 5
    assert shop.get_reservation(made.reservation_id) == made


def test_all_or_nothing_with_a_violation_per_short_line(shop: Client) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        shop.create_reservation(STORE, {"PHONE": 2, "CASE": 3, "NEVER-SEEN": 1})
    error = caught.value
    assert error.reason == "INSUFFICIENT_STOCK"
    assert {(v.subject, v.description) for v in error.precondition_violations} == {
        ("CASE", "requested 3, available 2"),
        ("NEVER-SEEN", "requested 1, available 0"),
    }
    assert ats(shop) == 5 and ats(shop, "CASE") == 2  # the line that fitted was not held
    assert list(shop.list_reservations()) == []


def test_holds_never_take_more_than_is_available(shop: Client) -> None:
    shop.create_reservation(STORE, {"PHONE": 4})
    with pytest.raises(FailedPreconditionError) as caught:
        shop.create_reservation(STORE, {"PHONE": 2})
    assert caught.value.precondition_violations[0].description == "requested 2, available 1"
    shop.create_reservation(STORE, {"PHONE": 1})
    assert ats(shop) == 0


def test_stale_stock_cannot_be_held(shop: Client, clock: FixedClock) -> None:
    clock.now = NOW + timedelta(days=2)  # past the store's 24 h freshness budget
    with pytest.raises(FailedPreconditionError) as caught:
        shop.create_reservation(STORE, {"PHONE": 1})
    assert caught.value.precondition_violations[0].description == "requested 1, available 0"


def test_the_same_idempotency_key_returns_the_same_reservation(shop: Client) -> None:
    first = shop.create_reservation(STORE, {"PHONE": 2}, idempotency_key="basket-7")
    again = shop.create_reservation(STORE, {"PHONE": 2}, idempotency_key="basket-7")
    assert again == first
    assert ats(shop) == 3  # held once
    with pytest.raises(AlreadyExistsError) as caught:
        shop.create_reservation(STORE, {"PHONE": 3}, idempotency_key="basket-7")
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert caught.value.resource_names == (first.reservation_id,)
    assert ats(shop) == 3


def test_ttl_defaults_and_maximum_per_method(shop: Client) -> None:
    checkout = shop.create_reservation(STORE, {"PHONE": 1}, method=ReservationMethod.CHECKOUT)
    assert checkout.expire_time.ToDatetime(NOW.tzinfo) == NOW + timedelta(minutes=15)
    chosen = shop.create_reservation(STORE, {"CASE": 1}, ttl=timedelta(hours=5))
    assert chosen.expire_time.ToDatetime(NOW.tzinfo) == NOW + timedelta(hours=5)
    with pytest.raises(InvalidArgumentError) as caught:
        shop.create_reservation(
            STORE, {"PHONE": 1}, method=ReservationMethod.CHECKOUT, ttl=timedelta(hours=3)
        )
    assert [v.field for v in caught.value.field_violations] == ["ttl"]
    assert "at most 2h" in caught.value.field_violations[0].description


def test_an_expired_hold_stops_counting_before_any_sweep(
    shop: Client, clock: FixedClock, server: InProcessServer
) -> None:
    made = shop.create_reservation(
        STORE, {"PHONE": 4}, method=ReservationMethod.CHECKOUT, ttl=timedelta(minutes=10)
    )
    assert ats(shop) == 1
    clock.now = NOW + timedelta(minutes=10)
    assert ats(shop) == 5
    expired = shop.get_reservation(made.reservation_id)
    assert state(expired) == "EXPIRED" and not expired.holds_stock
    with pytest.raises(FailedPreconditionError) as caught:
        shop.commit_reservation(made.reservation_id)
    assert caught.value.reason == "RESERVATION_EXPIRED"
    # A new hold may take the units at once, too.
    shop.create_reservation(STORE, {"PHONE": 5})
    assert ats(shop) == 0
    # The sweep records it; nothing is given back twice.
    assert server.server.reservations.expire_due() == 0  # the hold above already swept it
    assert state(shop.get_reservation(made.reservation_id)) == "EXPIRED"
    assert ats(shop) == 0


def test_the_sweeper_records_lapsed_holds(
    shop: Client, clock: FixedClock, server: InProcessServer
) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 1, "CASE": 1}, ttl=timedelta(minutes=1))
    clock.now = NOW + timedelta(minutes=2)
    assert server.server.reservations.expire_due() == 2
    assert server.server.reservations.expire_due() == 0
    assert [r.reservation_id for r in shop.list_reservations(state=ReservationState.EXPIRED)] == [
        made.reservation_id
    ]
    (answer,) = shop.get_availability("PHONE", [STORE], exposure=Exposure.EXACT)
    assert answer.reserved == 0


def test_extend_moves_the_expiry(shop: Client, clock: FixedClock) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 2}, ttl=timedelta(minutes=5))
    clock.now = NOW + timedelta(minutes=4)
    extended = shop.extend_reservation(made.reservation_id, timedelta(minutes=30))
    assert extended.expire_time.ToDatetime(NOW.tzinfo) == clock.now + timedelta(minutes=30)
    clock.now = NOW + timedelta(minutes=20)
    assert ats(shop) == 3
    with pytest.raises(InvalidArgumentError):
        shop.extend_reservation(made.reservation_id, timedelta(days=4))


def test_release_gives_the_hold_back_and_moves_are_checked(shop: Client) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 2})
    released = shop.release_reservation(made.reservation_id)
    assert state(released) == "RELEASED" and not released.holds_stock
    assert released.end_time.ToDatetime(NOW.tzinfo) == NOW
    assert ats(shop) == 5
    assert shop.release_reservation(made.reservation_id) == released  # asking again: no-op
    for move in (shop.commit_reservation, shop.fulfill_reservation):
        with pytest.raises(FailedPreconditionError) as caught:
            move(made.reservation_id)
        assert caught.value.reason == "RESERVATION_STATE"
    with pytest.raises(FailedPreconditionError):
        shop.extend_reservation(made.reservation_id, timedelta(minutes=5))
    assert ats(shop) == 5


def test_a_committed_hold_counts_until_fulfilled(shop: Client, clock: FixedClock) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 2}, ttl=timedelta(minutes=5))
    committed = shop.commit_reservation(made.reservation_id)
    assert state(committed) == "COMMITTED" and committed.holds_stock
    assert shop.commit_reservation(made.reservation_id) == committed  # no-op
    with pytest.raises(FailedPreconditionError):
        shop.release_reservation(made.reservation_id)
    clock.now = NOW + timedelta(hours=1)  # past the TTL: a commit no longer expires
    assert ats(shop) == 3
    fulfilled = shop.fulfill_reservation(made.reservation_id)
    assert state(fulfilled) == "COMMITTED" and not fulfilled.holds_stock
    assert ats(shop) == 5


def test_a_committed_hold_counts_until_a_newer_feed_update(shop: Client, clock: FixedClock) -> None:
    made = shop.create_reservation(STORE, {"PHONE": 2, "CASE": 1})
    clock.now = NOW + timedelta(minutes=5)
    shop.commit_reservation(made.reservation_id)
    # An update the store made before the commit does not show the sale yet.
    shop.apply_stock_updates([update(STORE, "PHONE", 5, NOW + timedelta(minutes=3))])
    assert ats(shop) == 3
    # A newer one does: the store has booked the sale (5 - 2) and the hold stops counting.
    shop.apply_stock_updates([update(STORE, "PHONE", 3, NOW + timedelta(minutes=6))])
    assert ats(shop) == 3
    assert shop.get_reservation(made.reservation_id).holds_stock  # CASE still counts
    assert ats(shop, "CASE") == 1
    shop.import_snapshot(STORE, NOW + timedelta(minutes=7), [("PHONE", 3), ("CASE", 1)])
    assert ats(shop, "CASE") == 1
    after = shop.get_reservation(made.reservation_id)
    assert state(after) == "COMMITTED" and not after.holds_stock


def test_a_snapshot_does_not_wipe_active_holds(shop: Client, clock: FixedClock) -> None:
    shop.create_reservation(STORE, {"PHONE": 2})
    clock.now = NOW + timedelta(minutes=1)
    shop.import_snapshot(STORE, NOW + timedelta(minutes=1), [("PHONE", 6), ("CASE", 2)])
    assert ats(shop) == 4


def test_list_by_location_and_state_in_pages(shop: Client) -> None:
    shop.apply_stock_updates([update("NL-UTR-01", "PHONE", 9, BEFORE)])
    made = [shop.create_reservation(STORE, {"PHONE": 1}) for _ in range(3)]
    other = shop.create_reservation("NL-UTR-01", {"PHONE": 1})
    shop.release_reservation(made[1].reservation_id)
    ids = [r.reservation_id for r in shop.list_reservations(location_id=STORE, page_size=1)]
    assert ids == [r.reservation_id for r in made]
    active = shop.list_reservations(location_id=STORE, state=ReservationState.ACTIVE)
    assert [r.reservation_id for r in active] == [made[0].reservation_id, made[2].reservation_id]
    assert [r.reservation_id for r in shop.list_reservations(state=ReservationState.RELEASED)] == [
        made[1].reservation_id
    ]
    assert len(list(shop.list_reservations())) == 4 and other.location_id == "NL-UTR-01"


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"location_id": "", "lines": {"PHONE": 1}}, ["location_id"]),
        ({"lines": {}}, ["lines"]),
        ({"lines": {"PHONE": 0}}, ["lines[0].quantity"]),
        ({"lines": {"bad sku!": 1}}, ["lines[0].sku"]),
        ({"lines": {"PHONE": 1}, "ttl": timedelta(seconds=-5)}, ["ttl"]),
        ({"lines": {"PHONE": 1}, "idempotency_key": "k" * 129}, ["idempotency_key"]),
        ({"lines": {"PHONE": 1}, "method": 0}, ["method"]),
    ],
)
def test_bad_requests_get_field_violations(
    shop: Client, kwargs: dict[str, object], fields: list[str]
) -> None:
    kwargs = dict(kwargs)  # the parameters are shared between the database runs
    location = kwargs.pop("location_id", STORE)
    lines = kwargs.pop("lines")
    with pytest.raises(InvalidArgumentError) as caught:
        shop.create_reservation(location, lines, **kwargs)  # type: ignore[arg-type]
    assert [v.field for v in caught.value.field_violations] == fields
    assert ats(shop) == 5


def test_unknown_names_are_not_found(shop: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        shop.create_reservation("NL-NOPE-01", {"PHONE": 1})
    assert caught.value.reason == "LOCATION_NOT_FOUND"
    with pytest.raises(NotFoundError) as caught:
        shop.get_reservation("rsv_" + "0" * 26)
    assert caught.value.reason == "RESERVATION_NOT_FOUND"
    with pytest.raises(InvalidArgumentError) as bad:
        shop.commit_reservation("order-1")
    assert [v.field for v in bad.value.field_violations] == ["reservation_id"]
