"""Proto <-> domain conversion. Field violations name proto field paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.locations import (
    Capabilities,
    Location,
    LocationKind,
    parse_hours_exception,
    parse_weekly_hours,
    validate_location_fields,
)
from omnistock.server.domain.stock import AvailabilityView, Exposure, StockStatus
from omnistock.v1 import availability_pb2, common_pb2, location_pb2

_KIND_FROM_PROTO = {
    location_pb2.LOCATION_KIND_STORE: LocationKind.STORE,
    location_pb2.LOCATION_KIND_WAREHOUSE: LocationKind.WAREHOUSE,
}
_KIND_TO_PROTO = {kind: value for value, kind in _KIND_FROM_PROTO.items()}
STATUS_TO_PROTO = {
    StockStatus.IN_STOCK: common_pb2.STOCK_STATUS_IN_STOCK,
    StockStatus.LIMITED: common_pb2.STOCK_STATUS_LIMITED,
    StockStatus.OUT_OF_STOCK: common_pb2.STOCK_STATUS_OUT_OF_STOCK,
    StockStatus.UNKNOWN: common_pb2.STOCK_STATUS_UNKNOWN,
}
_EXPOSURE_TO_PROTO = {
    Exposure.EXACT: common_pb2.EXPOSURE_EXACT,
    Exposure.BANDED: common_pb2.EXPOSURE_BANDED,
}


def kind_from_proto(value: int) -> LocationKind | None:
    return _KIND_FROM_PROTO.get(value)  # type: ignore[call-overload, no-any-return]


# Unspecified means BANDED: callers see exact counts only when they ask (and may).
EXPOSURES: dict[int, Exposure] = {
    common_pb2.EXPOSURE_UNSPECIFIED: Exposure.BANDED,
    common_pb2.EXPOSURE_BANDED: Exposure.BANDED,
    common_pb2.EXPOSURE_EXACT: Exposure.EXACT,
}


def exposure_from_proto(v: Violations, value: int, field_path: str = "exposure") -> Exposure:
    exposure = EXPOSURES.get(value)
    if exposure is None:
        v.add(field_path, "must be EXACT or BANDED")
        return Exposure.BANDED
    return exposure


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp_to_datetime(value: Timestamp) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        seconds=value.seconds, microseconds=value.nanos // 1000
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def datetime_to_timestamp(value: datetime) -> Timestamp:
    """As Timestamp.FromDatetime (a naive time is UTC), in a third of the time: every
    message of a watch stream carries one."""
    delta = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000)


# Timestamps a feed may carry: years 2000 to 2100, so they convert and compare safely.
MIN_SOURCE_SECONDS = 946_684_800
MAX_SOURCE_SECONDS = 4_102_444_800


def check_source_timestamp(v: Violations, value: Timestamp, field_path: str, present: bool) -> None:
    if not present:
        v.add(field_path, "is required")
    elif not (MIN_SOURCE_SECONDS <= value.seconds < MAX_SOURCE_SECONDS) or not (
        0 <= value.nanos < 1_000_000_000
    ):
        v.add(field_path, "must be a time between the years 2000 and 2100")


MAX_FRESHNESS_SECONDS = 366 * 24 * 3600


def location_from_proto(v: Violations, msg: location_pb2.Location, prefix: str) -> Location | None:
    kind = kind_from_proto(msg.kind)
    budget: timedelta | None = None
    if msg.HasField("freshness_budget"):
        given = msg.freshness_budget
        # Checked before it becomes a timedelta, which overflows past a billion days.
        if 0 <= given.seconds <= MAX_FRESHNESS_SECONDS and 0 <= given.nanos < 1_000_000_000:
            budget = timedelta(seconds=given.seconds, microseconds=given.nanos // 1000)
        else:
            v.add(f"{prefix}.freshness_budget", "must be a duration from 1 second to 366 days")
    safety = msg.default_safety_stock if msg.HasField("default_safety_stock") else None
    before = len(v.items)
    v.check(msg.HasField("position"), f"{prefix}.position", "is required")
    validate_location_fields(
        v,
        prefix,
        id=msg.id,
        kind=kind,
        name=msg.name,
        address=msg.address,
        country=msg.country,
        latitude=msg.position.latitude,
        longitude=msg.position.longitude,
        time_zone=msg.time_zone,
        pickup_lead_time_minutes=msg.pickup_lead_time_minutes,
        shipping_days=msg.shipping_days,
        default_safety_stock=safety,
        freshness_budget=budget,
    )
    weekly = [
        parse_weekly_hours(v, f"{prefix}.weekly_hours[{i}]", h.day, h.opens, h.closes)
        for i, h in enumerate(msg.weekly_hours)
    ]
    exceptions = [
        parse_hours_exception(
            v, f"{prefix}.hours_exceptions[{i}]", e.date, e.closed, e.opens, e.closes
        )
        for i, e in enumerate(msg.hours_exceptions)
    ]
    if len(v.items) > before or kind is None:
        return None
    return Location(
        id=msg.id,
        kind=kind,
        name=msg.name,
        address=msg.address,
        postal_code=msg.postal_code,
        country=msg.country,
        latitude=msg.position.latitude,
        longitude=msg.position.longitude,
        time_zone=msg.time_zone,
        weekly_hours=tuple(h for h in weekly if h is not None),
        hours_exceptions=tuple(e for e in exceptions if e is not None),
        capabilities=Capabilities(
            pickup=msg.capabilities.pickup,
            ship_from=msg.capabilities.ship_from,
            ship_to_store=msg.capabilities.ship_to_store,
        ),
        pickup_lead_time_minutes=msg.pickup_lead_time_minutes,
        shipping_days=msg.shipping_days,
        active=msg.active,
        default_safety_stock=safety,
        freshness_budget=budget,
    )


def location_to_proto(location: Location) -> location_pb2.Location:
    msg = location_pb2.Location(
        id=location.id,
        kind=_KIND_TO_PROTO[location.kind],
        name=location.name,
        address=location.address,
        postal_code=location.postal_code,
        country=location.country,
        position=common_pb2.LatLng(latitude=location.latitude, longitude=location.longitude),
        time_zone=location.time_zone,
        weekly_hours=[
            location_pb2.WeeklyHours(
                day=h.weekday,  # type: ignore[arg-type]
                opens=h.opens.strftime("%H:%M"),
                closes=h.closes.strftime("%H:%M"),
            )
            for h in location.weekly_hours
        ],
        hours_exceptions=[
            location_pb2.HoursException(
                date=e.date.isoformat(),
                closed=e.closed,
                opens="" if e.opens is None else e.opens.strftime("%H:%M"),
                closes="" if e.closes is None else e.closes.strftime("%H:%M"),
            )
            for e in location.hours_exceptions
        ],
        capabilities=location_pb2.Capabilities(
            pickup=location.capabilities.pickup,
            ship_from=location.capabilities.ship_from,
            ship_to_store=location.capabilities.ship_to_store,
        ),
        pickup_lead_time_minutes=location.pickup_lead_time_minutes,
        shipping_days=location.shipping_days,
        active=location.active,
    )
    if location.default_safety_stock is not None:
        msg.default_safety_stock = location.default_safety_stock
    if location.freshness_budget is not None:
        msg.freshness_budget.CopyFrom(
            Duration(seconds=int(location.freshness_budget.total_seconds()))
        )
    return msg


def view_to_proto(view: AvailabilityView) -> availability_pb2.Availability:
    # One constructor call per answer: this runs for every location of every read.
    as_of = None
    if view.as_of is not None:
        seconds, micros = divmod((view.as_of - _EPOCH) // _MICROSECOND, 1_000_000)
        as_of = Timestamp(seconds=seconds, nanos=micros * 1000)
    if view.available_to_sell is None:
        return availability_pb2.Availability(
            location_id=view.location_id,
            sku=view.sku,
            status=STATUS_TO_PROTO[view.status],
            exposure=_EXPOSURE_TO_PROTO[view.exposure],
            quantity_hint=view.quantity_hint,
            as_of=as_of,
            confidence=view.confidence,
        )
    return availability_pb2.Availability(
        location_id=view.location_id,
        sku=view.sku,
        status=STATUS_TO_PROTO[view.status],
        exposure=_EXPOSURE_TO_PROTO[view.exposure],
        available_to_sell=view.available_to_sell,
        on_hand=view.on_hand,
        reserved=view.reserved,
        safety_stock=view.safety_stock,
        quantity_hint=view.quantity_hint,
        as_of=as_of,
        confidence=view.confidence,
        source_sequence=view.source_sequence,
    )
