"""The stock rules: available to sell, status bands, freshness, confidence, exposure.

Every read (availability, search, watches) and every reservation decides
through these functions, so each rule lives here once.

Exposure: a BANDED answer is a function of the band and the record's age alone, and
of whether ATS covers a quantity the caller asked for. That last is the product (a
shopper asking for 3 must learn whether 3 are there), so a banded caller may ask for
at most a capped quantity a line (``check_quantity_asked``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from omnistock.server.domain.errors import Violations

DEFAULT_LOW_THRESHOLD = 3
DEFAULT_SAFETY_STOCK = 0
DEFAULT_STORE_FRESHNESS = timedelta(hours=24)
DEFAULT_WAREHOUSE_FRESHNESS = timedelta(hours=24)

# The most units a banded caller may ask for on one line, by default (a server option):
# about the in-stock threshold times three. Below it a banded caller learns whether q
# units are there, which is what it asked; it never learns more than "at least this".
DEFAULT_BANDED_MAX_QUANTITY = 10

# Confidence of an answer for a pair the location never reported: it reads as
# out of stock, but nobody has counted.
NO_RECORD_CONFIDENCE = 0.5


# IntEnum, not Enum: members hash as ints, which matters on the read path.
class StockStatus(enum.IntEnum):
    IN_STOCK = 1
    LIMITED = 2
    OUT_OF_STOCK = 3
    UNKNOWN = 4


class Exposure(enum.IntEnum):
    EXACT = 1
    BANDED = 2


class StockRecord(NamedTuple):
    """What is stored for one (location, sku). A named tuple: the read model keeps its
    records as plain tuples, which the garbage collector stops tracking (see
    readmodel.stock.RecordMap), and makes them StockRecords again cheaply on read."""

    location_id: str
    sku: str
    on_hand: int
    reserved: int
    safety_stock: int | None
    source_updated_at: datetime
    source_sequence: int | None = None
    # The active (unexpired when written) holds counted in ``reserved``, as
    # (quantity, expires_at): a hold whose time has passed stops counting at
    # once, before the sweeper takes it out of ``reserved``.
    holds: tuple[tuple[int, datetime], ...] = ()


def reserved_at(record: StockRecord, now: datetime) -> int:
    """The units held at ``now``: ``reserved`` less the holds that have expired since."""
    if not record.holds:
        return record.reserved
    return record.reserved - sum(quantity for quantity, expires in record.holds if expires <= now)


@dataclass(frozen=True, slots=True)
class StockPolicy:
    """The per-location settings the rules need."""

    freshness_budget: timedelta = DEFAULT_STORE_FRESHNESS
    default_safety_stock: int | None = None
    low_threshold: int = DEFAULT_LOW_THRESHOLD
    global_safety_stock: int = DEFAULT_SAFETY_STOCK

    def safety_stock_for(self, record_value: int | None) -> int:
        """The record's value, else the location's default, else the global default."""
        if record_value is not None:
            return record_value
        if self.default_safety_stock is not None:
            return self.default_safety_stock
        return self.global_safety_stock


def available_to_sell(on_hand: int, reserved: int, safety_stock: int) -> int:
    """ATS = max(0, on_hand - reserved - safety_stock). Never negative."""
    return max(0, on_hand - reserved - safety_stock)


def status_band(
    ats: int, *, stale: bool, low_threshold: int = DEFAULT_LOW_THRESHOLD
) -> StockStatus:
    """UNKNOWN when stale, else OUT_OF_STOCK at 0, LIMITED below the threshold, IN_STOCK."""
    if stale:
        return StockStatus.UNKNOWN
    if ats <= 0:
        return StockStatus.OUT_OF_STOCK
    if ats < low_threshold:
        return StockStatus.LIMITED
    return StockStatus.IN_STOCK


def is_stale(age: timedelta, budget: timedelta) -> bool:
    """A record older than its location's freshness budget is stale."""
    return age > budget


def freshness(age: timedelta, budget: timedelta) -> float:
    """1 when just counted, falling linearly to 0.5 at the edge of the budget, 0 once
    stale. A record stamped in the future (clock skew) counts as age 0."""
    if is_stale(age, budget):
        return 0.0
    seconds = max(0.0, age.total_seconds())
    budget_seconds = max(budget.total_seconds(), 1e-9)
    return 1.0 - 0.5 * min(1.0, seconds / budget_seconds)


def depth(ats: int) -> float:
    """1 - 0.5 / (1 + ATS): 0.5 at zero stock, 0.75 at one unit, rising towards 1,
    because a count of one or two is the most often wrong."""
    return 1.0 - 0.5 / (1 + max(0, ats))


def confidence(age: timedelta, budget: timedelta, ats: int) -> float:
    """How far to trust an EXACT answer, in [0, 1]: freshness x depth(ATS), rounded to
    3 places."""
    return round(freshness(age, budget) * depth(ats), 3)


def band_depth(status: StockStatus, low_threshold: int) -> float:
    """The depth of the smallest count a band admits: OUT_OF_STOCK depth(0) = 0.5,
    LIMITED depth(1) = 0.75, IN_STOCK depth(low_threshold) (0.875 at the default 3).
    UNKNOWN (stale) has freshness 0, so its depth never shows."""
    if status is StockStatus.IN_STOCK:
        return depth(low_threshold)
    if status is StockStatus.LIMITED:
        return depth(1)
    return depth(0)


def banded_confidence(
    age: timedelta, budget: timedelta, status: StockStatus, low_threshold: int
) -> float:
    """How far to trust a BANDED answer: freshness x band_depth, rounded to 3 places.

    A function of the band and the record's age alone, so it cannot be solved for the
    count: depth(ATS) would give it away (confidences 0.75, 0.833, 0.938 and 0.964 are
    ATS 1, 2, 7 and 13 to a caller who knows ``as_of`` and the freshness budget).
    """
    return round(freshness(age, budget) * band_depth(status, low_threshold), 3)


@dataclass(frozen=True, slots=True)
class AvailabilityView:
    """One (location, sku) answer as a caller at some exposure may see it.

    Banded views carry no exact count: every quantity field is None, and every other
    field is a function of the band and the record's age alone.
    """

    location_id: str
    sku: str
    status: StockStatus
    exposure: Exposure
    as_of: datetime | None
    confidence: float
    available_to_sell: int | None = None
    on_hand: int | None = None
    reserved: int | None = None
    safety_stock: int | None = None
    quantity_hint: str = ""
    source_sequence: int | None = None  # EXACT only


def quantity_may_be_asked(quantity: int, *, granted: Exposure, banded_max: int) -> bool:
    """A caller not granted EXACT may ask for at most ``banded_max`` units a line: each
    answer tells it whether ATS covers the quantity, so without a cap a binary search of
    quantities would find the count."""
    return granted is Exposure.EXACT or quantity <= banded_max


def check_quantity_asked(
    v: Violations, field_path: str, quantity: int, *, granted: Exposure, banded_max: int
) -> None:
    """The violation of quantity_may_be_asked, if any."""
    if not quantity_may_be_asked(quantity, granted=granted, banded_max=banded_max):
        v.add(
            field_path,
            f"must be at most {banded_max} for a key with banded exposure"
            " (it may not learn counts beyond that)",
        )


def quantity_hint(status: StockStatus, low_threshold: int) -> str:
    """The only quantity a banded caller sees: "3+" when in stock, else nothing."""
    return f"{low_threshold}+" if status is StockStatus.IN_STOCK else ""


def view_record(
    record: StockRecord,
    policy: StockPolicy,
    *,
    now: datetime,
    exposure: Exposure,
) -> AvailabilityView:
    """Apply ATS, band, freshness, confidence and exposure to a stored record."""
    safety = policy.safety_stock_for(record.safety_stock)
    reserved = reserved_at(record, now)
    ats = available_to_sell(record.on_hand, reserved, safety)
    age = now - record.source_updated_at
    stale = is_stale(age, policy.freshness_budget)
    status = status_band(ats, stale=stale, low_threshold=policy.low_threshold)
    if exposure is Exposure.EXACT:
        return AvailabilityView(
            record.location_id,
            record.sku,
            status,
            exposure,
            record.source_updated_at,
            confidence(age, policy.freshness_budget, ats),
            available_to_sell=ats,
            on_hand=record.on_hand,
            reserved=reserved,
            safety_stock=safety,
            source_sequence=record.source_sequence,
        )
    return AvailabilityView(
        record.location_id,
        record.sku,
        status,
        exposure,
        record.source_updated_at,
        banded_confidence(age, policy.freshness_budget, status, policy.low_threshold),
        quantity_hint=quantity_hint(status, policy.low_threshold),
    )


def view_missing(
    location_id: str, sku: str, policy: StockPolicy, *, exposure: Exposure
) -> AvailabilityView:
    """A pair the location never reported reads as out of stock, at lower confidence."""
    if exposure is Exposure.EXACT:
        return AvailabilityView(
            location_id,
            sku,
            StockStatus.OUT_OF_STOCK,
            exposure,
            None,
            NO_RECORD_CONFIDENCE,
            available_to_sell=0,
            on_hand=0,
            reserved=0,
            safety_stock=policy.safety_stock_for(None),
        )
    return AvailabilityView(
        location_id, sku, StockStatus.OUT_OF_STOCK, exposure, None, NO_RECORD_CONFIDENCE
    )
