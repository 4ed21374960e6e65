"""Proto <-> domain for SearchNearby and GetFulfillmentOptions."""

from __future__ import annotations

from datetime import datetime

from omnistock.server.domain.errors import Violations
from omnistock.server.domain.fulfillment import CartLine, Method, Option
from omnistock.server.domain.hours import DayHours, describe
from omnistock.server.domain.ids import check_id
from omnistock.server.service.limits import MAX_QUANTITY
from omnistock.server.service.minute_cache import MinuteCache
from omnistock.server.service.nearby import LineAnswer, NearbyAnswer, Origin, ShipAnswer
from omnistock.server.transport.convert import STATUS_TO_PROTO, datetime_to_timestamp
from omnistock.v1 import availability_pb2, common_pb2

MAX_CART_LINES = 50
DEFAULT_RADIUS_KM = 25.0
MAX_RADIUS_KM = 500.0
DEFAULT_LIMIT = 10
MAX_LIMIT = 100

_METHOD_TO_PROTO = {
    Method.PICKUP: availability_pb2.FULFILLMENT_METHOD_PICKUP,
    Method.SHIP: availability_pb2.FULFILLMENT_METHOD_SHIP,
    Method.SHIP_TO_STORE: availability_pb2.FULFILLMENT_METHOD_SHIP_TO_STORE,
    Method.SPLIT: availability_pb2.FULFILLMENT_METHOD_SPLIT,
}


def parse_cart(v: Violations, lines: list[availability_pb2.CartLine]) -> list[CartLine]:
    if not lines:
        v.add("lines", "must not be empty")
    elif len(lines) > MAX_CART_LINES:
        v.add("lines", f"must hold at most {MAX_CART_LINES} lines")
    cart = []
    seen: set[str] = set()
    for i, line in enumerate(lines[:MAX_CART_LINES]):
        check_id(v, line.sku, f"lines[{i}].sku")
        if line.sku in seen:
            v.add(f"lines[{i}].sku", f"repeats {line.sku!r}: give each sku one line")
        seen.add(line.sku)
        v.check(1 <= line.quantity <= MAX_QUANTITY, f"lines[{i}].quantity", "must be at least 1")
        cart.append(CartLine(line.sku, line.quantity))
    return cart


def parse_origin(
    v: Violations, request_has_origin: bool, origin: availability_pb2.Origin
) -> Origin:
    if not request_has_origin or origin.WhichOneof("origin") is None:
        v.add("origin", "give a position or a postal code")
        return Origin()
    if origin.country and (len(origin.country) != 2 or not origin.country.isalpha()):
        v.add("origin.country", "must be an ISO 3166-1 alpha-2 code such as NL")
    if origin.WhichOneof("origin") == "position":
        lat, lon = origin.position.latitude, origin.position.longitude
        v.check(-90.0 <= lat <= 90.0, "origin.position.latitude", "must be within [-90, 90]")
        v.check(-180.0 <= lon <= 180.0, "origin.position.longitude", "must be within [-180, 180]")
        return Origin(latitude=lat, longitude=lon)
    code = origin.postal_code.strip()
    v.check(0 < len(code) <= 16, "origin.postal_code", "must be 1-16 characters")
    return Origin(postal_code=code, country=origin.country)


def parse_radius(v: Violations, has: bool, value: float) -> float:
    if not has:
        return DEFAULT_RADIUS_KM
    v.check(
        0.0 < value <= MAX_RADIUS_KM,
        "radius_km",
        f"must be above 0 and at most {MAX_RADIUS_KM:.0f}",
    )
    return value


def parse_limit(v: Violations, has: bool, value: int) -> int:
    if not has:
        return DEFAULT_LIMIT
    v.check(1 <= value <= MAX_LIMIT, "limit", f"must be within [1, {MAX_LIMIT}]")
    return value


def parse_search_method(v: Violations, value: int) -> Method:
    if value in (
        availability_pb2.FULFILLMENT_METHOD_UNSPECIFIED,
        availability_pb2.FULFILLMENT_METHOD_PICKUP,
    ):
        return Method.PICKUP
    if value == availability_pb2.FULFILLMENT_METHOD_SHIP_TO_STORE:
        return Method.SHIP_TO_STORE
    v.add("method", "must be PICKUP or SHIP_TO_STORE")
    return Method.PICKUP


def _line_to_proto(answer: LineAnswer) -> availability_pb2.LineAvailability:
    view = answer.view
    return availability_pb2.LineAvailability(
        sku=answer.line.sku,
        quantity=answer.line.quantity,
        status=STATUS_TO_PROTO[view.status],
        available_to_sell=view.available_to_sell,
        quantity_hint=view.quantity_hint,
        fulfillable=answer.fulfillable,
        confidence=view.confidence,
        as_of=None if view.as_of is None else datetime_to_timestamp(view.as_of),
    )


def _hours_to_proto(day: DayHours) -> availability_pb2.DayHours:
    if day.opens is None or day.closes is None:
        return availability_pb2.DayHours(date=day.date.isoformat(), closed=True)
    return availability_pb2.DayHours(
        date=day.date.isoformat(),
        opens=day.opens.strftime("%H:%M"),
        closes=day.closes.strftime("%H:%M"),
    )


class NearbyPresenter:
    """Builds NearbyLocation messages; the parts that change once a minute are built once."""

    def __init__(self) -> None:
        self._templates: MinuteCache[str, availability_pb2.NearbyLocation] = MinuteCache()
        self._lines: MinuteCache[int, tuple[LineAnswer, availability_pb2.LineAvailability]] = (
            MinuteCache()
        )

    def _template(self, answer: NearbyAnswer) -> availability_pb2.NearbyLocation:
        p = answer.presentation
        template = self._templates.get(p.minute, answer.location.id)
        if template is None:
            template = availability_pb2.NearbyLocation(
                location_id=answer.location.id,
                name=answer.location.name,
                ready_by=None if p.ready_by is None else datetime_to_timestamp(p.ready_by),
                ready_by_text="" if p.ready_by is None else describe(p.ready_by, p.minute),
                today_hours=_hours_to_proto(p.today),
                open_now=p.open_now,
                time_zone=answer.location.time_zone,
            )
            self._templates.put(p.minute, answer.location.id, template)
        return template

    def _line(self, answer: LineAnswer, minute: datetime) -> availability_pb2.LineAvailability:
        # The service reuses line answers within a minute: convert each one once.
        cached = self._lines.get(minute, id(answer))
        if cached is not None and cached[0] is answer:
            return cached[1]
        message = _line_to_proto(answer)
        self._lines.put(minute, id(answer), (answer, message))
        return message

    def to_proto(self, answer: NearbyAnswer) -> availability_pb2.NearbyLocation:
        message = availability_pb2.NearbyLocation()
        message.CopyFrom(self._template(answer))
        message.distance_km = round(answer.distance_km, 3)
        message.has_all = answer.has_all
        minute = answer.presentation.minute
        message.lines.extend([self._line(line, minute) for line in answer.lines])
        return message


def ship_to_proto(answer: ShipAnswer) -> availability_pb2.ShipOption:
    return availability_pb2.ShipOption(
        location_id=answer.location.id,
        lines=[_line_to_proto(line) for line in answer.lines],
        has_all=answer.has_all,
        delivery_date=answer.delivery.date().isoformat(),
        shipping_days=answer.location.shipping_days,
    )


def _cart_line(line: CartLine) -> availability_pb2.CartLine:
    return availability_pb2.CartLine(sku=line.sku, quantity=line.quantity)


def option_to_proto(option: Option, now: datetime) -> availability_pb2.FulfillmentOption:
    return availability_pb2.FulfillmentOption(
        method=_METHOD_TO_PROTO[option.method],
        pickup_location_id=option.pickup.id if option.pickup else "",
        ship_location_id=option.ship_from.id if option.ship_from else "",
        pickup_lines=[_cart_line(line) for line in option.pickup_lines],
        ship_lines=[_cart_line(line) for line in option.ship_lines],
        distance_km=round(option.distance_km, 3),
        ready_by=None if option.ready_by is None else datetime_to_timestamp(option.ready_by),
        ready_by_text="" if option.ready_by is None else describe(option.ready_by, now),
        delivery_date="" if option.delivery is None else option.delivery.isoformat(),
        complete_by=datetime_to_timestamp(option.complete_by),
    )


def latlng(point: tuple[float, float]) -> common_pb2.LatLng:
    return common_pb2.LatLng(latitude=point[0], longitude=point[1])
