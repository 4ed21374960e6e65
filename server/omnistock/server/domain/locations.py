"""Locations: stores and warehouses, their hours, capabilities and stock policy."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.stock import (
    DEFAULT_STORE_FRESHNESS,
    DEFAULT_WAREHOUSE_FRESHNESS,
    StockPolicy,
)

MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 500
MAX_LEAD_TIME_MINUTES = 7 * 24 * 60
MAX_SHIPPING_DAYS = 60
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_COUNTRY = re.compile(r"[A-Z]{2}")


class LocationKind(enum.Enum):
    STORE = "STORE"
    WAREHOUSE = "WAREHOUSE"


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours on one ISO weekday (1 = Monday ... 7 = Sunday), local time."""

    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class HoursException:
    """Hours that replace the weekly hours on one local date; closed when opens is None."""

    date: date
    opens: time | None = None
    closes: time | None = None

    @property
    def closed(self) -> bool:
        return self.opens is None


@dataclass(frozen=True, slots=True)
class Capabilities:
    pickup: bool = False
    ship_from: bool = False
    ship_to_store: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    kind: LocationKind
    name: str
    time_zone: str
    latitude: float
    longitude: float
    address: str = ""
    postal_code: str = ""
    country: str = ""
    weekly_hours: tuple[WeeklyHours, ...] = ()
    hours_exceptions: tuple[HoursException, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    pickup_lead_time_minutes: int = 0
    shipping_days: int = 0
    active: bool = True
    default_safety_stock: int | None = None
    freshness_budget: timedelta | None = None
    # Derived once (reads use it on every answer); not part of equality.
    stock_policy: StockPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "stock_policy",
            StockPolicy(
                freshness_budget=self.effective_freshness_budget,
                default_safety_stock=self.default_safety_stock,
            ),
        )

    @property
    def effective_freshness_budget(self) -> timedelta:
        if self.freshness_budget is not None:
            return self.freshness_budget
        if self.kind is LocationKind.WAREHOUSE:
            return DEFAULT_WAREHOUSE_FRESHNESS
        return DEFAULT_STORE_FRESHNESS


def parse_hhmm(value: str) -> time | None:
    match = _HHMM.fullmatch(value)
    if match is None:
        return None
    return time(int(match.group(1)), int(match.group(2)))


def is_known_time_zone(name: str) -> bool:
    if not name or name not in _time_zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_TIME_ZONES: frozenset[str] | None = None


def _time_zones() -> frozenset[str]:
    global _TIME_ZONES
    if _TIME_ZONES is None:
        _TIME_ZONES = frozenset(available_timezones())
    return _TIME_ZONES


def validate_location_fields(
    v: Violations,
    prefix: str,
    *,
    id: str,
    kind: LocationKind | None,
    name: str,
    address: str,
    country: str,
    latitude: float,
    longitude: float,
    time_zone: str,
    pickup_lead_time_minutes: int,
    shipping_days: int,
    default_safety_stock: int | None,
    freshness_budget: timedelta | None,
) -> None:
    """Check the scalar fields of a location; hours are checked as they are parsed."""
    check_id(v, id, f"{prefix}.id")
    v.check(kind is not None, f"{prefix}.kind", "must be STORE or WAREHOUSE")
    v.check(bool(name.strip()), f"{prefix}.name", "is required")
    v.check(
        len(name) <= MAX_NAME_LENGTH,
        f"{prefix}.name",
        f"must be at most {MAX_NAME_LENGTH} characters",
    )
    v.check(
        len(address) <= MAX_ADDRESS_LENGTH,
        f"{prefix}.address",
        f"must be at most {MAX_ADDRESS_LENGTH} characters",
    )
    v.check(
        country == "" or _COUNTRY.fullmatch(country) is not None,
        f"{prefix}.country",
        "must be an ISO 3166-1 alpha-2 code such as NL",
    )
    v.check(-90.0 <= latitude <= 90.0, f"{prefix}.position.latitude", "must be within [-90, 90]")
    v.check(
        -180.0 <= longitude <= 180.0, f"{prefix}.position.longitude", "must be within [-180, 180]"
    )
    v.check(
        is_known_time_zone(time_zone),
        f"{prefix}.time_zone",
        "must be an IANA time zone such as Europe/Amsterdam",
    )
    v.check(
        0 <= pickup_lead_time_minutes <= MAX_LEAD_TIME_MINUTES,
        f"{prefix}.pickup_lead_time_minutes",
        f"must be within [0, {MAX_LEAD_TIME_MINUTES}]",
    )
    v.check(
        0 <= shipping_days <= MAX_SHIPPING_DAYS,
        f"{prefix}.shipping_days",
        f"must be within [0, {MAX_SHIPPING_DAYS}]",
    )
    v.check(
        default_safety_stock is None or default_safety_stock >= 0,
        f"{prefix}.default_safety_stock",
        "must not be negative",
    )
    v.check(
        freshness_budget is None or freshness_budget > timedelta(0),
        f"{prefix}.freshness_budget",
        "must be positive",
    )


def parse_weekly_hours(
    v: Violations, prefix: str, weekday: int, opens: str, closes: str
) -> WeeklyHours | None:
    v.check(1 <= weekday <= 7, f"{prefix}.day", "must be a day of the week")
    open_time, close_time = parse_hhmm(opens), parse_hhmm(closes)
    v.check(open_time is not None, f"{prefix}.opens", "must be HH:MM")
    v.check(close_time is not None, f"{prefix}.closes", "must be HH:MM")
    if open_time is None or close_time is None or not 1 <= weekday <= 7:
        return None
    if close_time <= open_time:
        v.add(f"{prefix}.closes", "must be after opens")
        return None
    return WeeklyHours(weekday, open_time, close_time)


def parse_hours_exception(
    v: Violations, prefix: str, day: str, closed: bool, opens: str, closes: str
) -> HoursException | None:
    try:
        parsed_date = date.fromisoformat(day)
    except ValueError:
        v.add(f"{prefix}.date", "must be YYYY-MM-DD")
        return None
    if closed:
        return HoursException(parsed_date)
    hours = parse_weekly_hours(v, prefix, parsed_date.isoweekday(), opens, closes)
    return None if hours is None else HoursException(parsed_date, hours.opens, hours.closes)
