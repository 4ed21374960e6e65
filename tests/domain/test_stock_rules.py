"""The stock rules of DESIGN.md, one test per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.stock import (
    NO_RECORD_CONFIDENCE,
    Exposure,
    StockPolicy,
    StockRecord,
    StockStatus,
    available_to_sell,
    check_quantity_asked,
    confidence,
    is_stale,
    status_band,
    view_missing,
    view_record,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def record(
    on_hand: int, *, reserved: int = 0, safety: int | None = None, age: timedelta = timedelta(0)
) -> StockRecord:
    return StockRecord("NL-AMS-01", "SKU-1", on_hand, reserved, safety, NOW - age)


def test_ats_is_on_hand_minus_reserved_minus_safety_stock() -> None:
    assert available_to_sell(10, 3, 2) == 5


def test_ats_never_goes_negative_even_when_pos_on_hand_does() -> None:
    assert available_to_sell(-4, 0, 0) == 0
    assert available_to_sell(2, 5, 0) == 0
    assert available_to_sell(3, 0, 5) == 0


@given(st.integers(-(10**12), 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_ats_is_never_negative_for_any_input(on_hand: int, reserved: int, safety: int) -> None:
    assert available_to_sell(on_hand, reserved, safety) >= 0


@pytest.mark.parametrize(
    ("ats", "band"),
    [
        (0, StockStatus.OUT_OF_STOCK),
        (1, StockStatus.LIMITED),
        (2, StockStatus.LIMITED),
        (3, StockStatus.IN_STOCK),
        (500, StockStatus.IN_STOCK),
    ],
)
def test_band_follows_ats_and_the_low_threshold_of_three(ats: int, band: StockStatus) -> None:
    assert status_band(ats, stale=False) is band


def test_low_threshold_is_configurable() -> None:
    assert status_band(4, stale=False, low_threshold=5) is StockStatus.LIMITED


def test_a_stale_record_reads_unknown_never_in_stock() -> None:
    assert status_band(1000, stale=True) is StockStatus.UNKNOWN


def test_a_record_older_than_its_freshness_budget_is_stale() -> None:
    assert not is_stale(DAY, DAY)
    assert is_stale(DAY + timedelta(seconds=1), DAY)


def test_safety_stock_comes_from_record_then_location_then_global_default() -> None:
    assert StockPolicy(default_safety_stock=2, global_safety_stock=1).safety_stock_for(5) == 5
    assert StockPolicy(default_safety_stock=2, global_safety_stock=1).safety_stock_for(None) == 2
    assert StockPolicy(default_safety_stock=None, global_safety_stock=1).safety_stock_for(None) == 1


def test_confidence_is_full_for_a_fresh_deep_record() -> None:
    assert confidence(timedelta(0), DAY, 10**6) == pytest.approx(1.0, abs=1e-3)


def test_confidence_halves_with_age_up_to_the_budget_then_drops_to_zero() -> None:
    deep = 10**6
    assert confidence(DAY / 2, DAY, deep) == pytest.approx(0.75, abs=1e-3)
    assert confidence(DAY, DAY, deep) == pytest.approx(0.5, abs=1e-3)
    assert confidence(DAY + timedelta(seconds=1), DAY, deep) == 0.0


def test_confidence_is_lower_near_zero_stock() -> None:
    assert confidence(timedelta(0), DAY, 0) == 0.5
    assert confidence(timedelta(0), DAY, 1) == 0.75
    assert confidence(timedelta(0), DAY, 1) < confidence(timedelta(0), DAY, 10)


@given(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    st.integers(0, 10**6),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=6)),
)
def test_confidence_stays_in_range_and_falls_with_age(
    age: timedelta, ats: int, more: timedelta
) -> None:
    first = confidence(age, DAY, ats)
    assert 0.0 <= first <= 1.0
    assert confidence(age + more, DAY, ats) <= first


def test_confidence_treats_a_future_timestamp_as_just_counted() -> None:
    assert confidence(-timedelta(hours=1), DAY, 10**6) == pytest.approx(1.0, abs=1e-3)


def test_exact_view_shows_every_count() -> None:
    view = view_record(
        record(10, reserved=2, safety=1), StockPolicy(), now=NOW, exposure=Exposure.EXACT
    )
    assert (view.on_hand, view.reserved, view.safety_stock, view.available_to_sell) == (10, 2, 1, 7)
    assert view.status is StockStatus.IN_STOCK
    assert view.as_of == NOW


def test_banded_view_carries_no_exact_quantity_only_a_capped_hint() -> None:
    view = view_record(record(57), StockPolicy(), now=NOW, exposure=Exposure.BANDED)
    assert view.status is StockStatus.IN_STOCK
    assert (view.on_hand, view.reserved, view.safety_stock, view.available_to_sell) == (None,) * 4
    assert view.quantity_hint == "3+"


def test_banded_limited_view_has_no_hint() -> None:
    view = view_record(record(2), StockPolicy(), now=NOW, exposure=Exposure.BANDED)
    assert view.status is StockStatus.LIMITED
    assert view.quantity_hint == ""


def test_view_of_a_stale_record_is_unknown_with_zero_confidence() -> None:
    view = view_record(record(50, age=DAY * 2), StockPolicy(), now=NOW, exposure=Exposure.BANDED)
    assert view.status is StockStatus.UNKNOWN
    assert view.confidence == 0.0
    assert view.quantity_hint == ""


def test_location_freshness_budget_decides_staleness() -> None:
    policy = StockPolicy(freshness_budget=timedelta(hours=1))
    view = view_record(record(50, age=timedelta(hours=2)), policy, now=NOW, exposure=Exposure.EXACT)
    assert view.status is StockStatus.UNKNOWN


def test_a_pair_never_reported_reads_out_of_stock_at_lower_confidence() -> None:
    view = view_missing("NL-AMS-01", "SKU-1", StockPolicy(), exposure=Exposure.EXACT)
    assert view.status is StockStatus.OUT_OF_STOCK
    assert view.available_to_sell == 0
    assert view.as_of is None
    assert view.confidence == NO_RECORD_CONFIDENCE


# -- exposure: a banded view is a function of the band and the record's age


@given(
    st.integers(-5, 200),
    st.integers(-5, 200),
    st.integers(0, 3),
    st.integers(0, 4),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=30)),
    st.integers(1, 6),
)
def test_banded_views_of_counts_in_one_band_are_equal(
    first: int, second: int, reserved: int, safety: int, age: timedelta, threshold: int
) -> None:
    policy = StockPolicy(low_threshold=threshold)
    views = [
        view_record(
            record(on_hand, reserved=reserved, safety=safety, age=age),
            policy,
            now=NOW,
            exposure=Exposure.BANDED,
        )
        for on_hand in (first, second)
    ]
    if views[0].status is views[1].status:
        assert views[0] == views[1]


def test_banded_confidence_is_freshness_times_the_bands_depth() -> None:
    def banded(on_hand: int, age: timedelta = timedelta(0), threshold: int = 3) -> float:
        policy = StockPolicy(low_threshold=threshold)
        return view_record(
            record(on_hand, age=age), policy, now=NOW, exposure=Exposure.BANDED
        ).confidence

    assert [banded(n) for n in (0, 1, 2, 3, 7, 13, 10**6)] == [
        0.5, 0.75, 0.75, 0.875, 0.875, 0.875, 0.875,
    ]  # fmt: skip
    assert banded(1, DAY / 2) == banded(2, DAY / 2) == round(0.75 * 0.75, 3)
    assert banded(9, threshold=5) == round(1 - 0.5 / 6, 3)  # the depth of 5 units
    assert banded(50, DAY * 2) == 0.0


def test_exact_confidence_keeps_the_depth_of_the_count() -> None:
    exact = [
        view_record(record(n), StockPolicy(), now=NOW, exposure=Exposure.EXACT).confidence
        for n in (1, 2, 7, 13)
    ]
    assert exact == [0.75, 0.833, 0.938, 0.964]


def test_a_key_without_the_exact_grant_may_ask_for_at_most_the_cap() -> None:
    v = Violations()
    check_quantity_asked(v, "lines[0].quantity", 10, granted=Exposure.BANDED, banded_max=10)
    check_quantity_asked(v, "lines[1].quantity", 10**6, granted=Exposure.EXACT, banded_max=10)
    assert not v
    check_quantity_asked(v, "lines[2].quantity", 11, granted=Exposure.BANDED, banded_max=10)
    assert [violation.field for violation in v.items] == ["lines[2].quantity"]
