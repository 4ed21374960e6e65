"""Proto <-> domain for SearchNearby and GetFulfillmentOptions."""

from __future__ import annotations

import struct
from datetime import date, datetime

from omnistock.server.domain.errors import Violations
from omnistock.server.domain.fulfillment import CartLine, Method, Option
from omnistock.server.domain.hours import DayHours, describe
from omnistock.server.domain.ids import check_id, is_valid_id
from omnistock.server.domain.stock import Exposure, check_quantity_asked
from omnistock.server.readmodel.minute import MinuteCache
from omnistock.server.service.answers import LineAnswer, NearbyAnswer, SearchResult, ShipAnswer
from omnistock.server.service.limits import MAX_QUANTITY
from omnistock.server.service.origins import Origin
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


def parse_cart(
    v: Violations,
    lines: list[availability_pb2.CartLine],
    *,
    granted: Exposure,
    banded_max: int,
) -> list[CartLine]:
    """The cart's lines, checked; a caller ``granted`` less than EXACT may ask for at most
    ``banded_max`` units a line."""
    if not lines:
        v.add("lines", "must not be empty")
    elif len(lines) > MAX_CART_LINES:
        v.add("lines", f"must hold at most {MAX_CART_LINES} lines")
    cart = []
    seen: set[str] = set()
    for i, line in enumerate(lines[:MAX_CART_LINES]):
        sku, quantity = line.sku, line.quantity
        if not is_valid_id(sku):
            check_id(v, sku, f"lines[{i}].sku")
        if sku in seen:
            v.add(f"lines[{i}].sku", f"repeats {sku!r}: give each sku one line")
        seen.add(sku)
        if not 1 <= quantity <= MAX_QUANTITY:
            v.add(f"lines[{i}].quantity", f"must be within [1, {MAX_QUANTITY}]")
        else:
            check_quantity_asked(
                v, f"lines[{i}].quantity", quantity, granted=granted, banded_max=banded_max
            )
        cart.append(CartLine(sku, quantity))
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
        available_from="" if answer.available_from is None else answer.available_from.isoformat(),
        available_from_text=(
            "" if answer.available_from is None else available_from_text(answer.available_from)
        ),
    )


def available_from_text(day: date) -> str:
    """ "available from 12 Dec"."""
    return f"available from {day.day} {day:%b}"


def hours_to_proto(day: DayHours) -> availability_pb2.DayHours:
    if day.opens is None or day.closes is None:
        return availability_pb2.DayHours(date=day.date.isoformat(), closed=True)
    return availability_pb2.DayHours(
        date=day.date.isoformat(),
        opens=day.opens.strftime("%H:%M"),
        closes=day.closes.strftime("%H:%M"),
    )


class NearbyPresenter:
    """Encodes SearchNearby responses.

    A response is written as bytes, not built as a message: each store's entry (its name,
    hours, ready-by and line answers) is serialized once a minute, for as long as the
    service hands back the same line answers, and a search only appends the distance and
    joins the entries. Protobuf allows this: a message's fields may come in any order, and
    a repeated field is its elements' encodings one after another. A test checks that the
    bytes parse to the message the fields describe.
    """

    def __init__(self) -> None:
        # By the serial of the answer encoded (StoreAnswer.serial, ShipAnswer.serial).
        self._blocks: MinuteCache[int, bytes] = MinuteCache()
        self._ships: MinuteCache[int, bytes] = MinuteCache(max_entries=10_000)

    def _entry(self, answer: NearbyAnswer) -> bytes:
        """A store's entry in the response's locations but the distance's eight bytes:
        the field's tag and length, the NearbyLocation fields but the distance, and the
        distance's tag. Kept by the serial of the StoreAnswer it encodes, which the service
        hands back while it stands (for the minute at most)."""
        store = answer.store
        minute = store.presentation.minute
        p = answer.presentation
        message = availability_pb2.NearbyLocation(
            location_id=answer.location.id,
            name=answer.location.name,
            lines=[_line_to_proto(line) for line in answer.lines],
            has_all=answer.has_all,
            ready_by=None if p.ready_by is None else datetime_to_timestamp(p.ready_by),
            ready_by_text="" if p.ready_by is None else describe(p.ready_by, p.minute),
            today_hours=hours_to_proto(p.today),
            open_now=p.open_now,
            time_zone=answer.location.time_zone,
        )
        block = message.SerializeToString() + _DISTANCE
        entry = _tag_and_length(_LOCATIONS, len(block) + 8) + block
        self._blocks.put(minute, store.serial, entry)
        return entry

    def _ship(self, answer: ShipAnswer, minute: datetime) -> bytes:
        # The service reuses a cart's ship answer within the minute: encode it once.
        cached = self._ships.get(minute, answer.serial)
        if cached is not None:
            return cached
        encoded = _field(_SHIP, ship_to_proto(answer).SerializeToString())
        self._ships.put(minute, answer.serial, encoded)
        return encoded

    def encode(self, result: SearchResult, now: datetime) -> bytes:
        """The serialized SearchNearbyResponse for ``result``."""
        minute = now.replace(second=0, microsecond=0)
        encoded = self._blocks.of(minute)
        parts = []
        for answer in result.locations:
            entry = encoded.get(answer.store.serial)
            parts.append((entry or self._entry(answer)) + _double(round(answer.distance_km, 3)))
        if result.ship is not None:
            parts.append(self._ship(result.ship, minute))
        latitude, longitude = result.origin
        parts.append(_ORIGIN_LATLNG + _double(latitude) + _LONGITUDE + _double(longitude))
        return b"".join(parts)


# Wire tags: (field number << 3) | wire type (1 = 64-bit, 2 = length-delimited).
_LOCATIONS = b"\x0a"  # SearchNearbyResponse.locations = 1
_SHIP = b"\x12"  # SearchNearbyResponse.ship = 2
_ORIGIN = b"\x1a"  # SearchNearbyResponse.origin = 3
_DISTANCE = b"\x19"  # NearbyLocation.distance_km = 3, a double (8 bytes)
# SearchNearbyResponse.origin, 18 bytes: LatLng.latitude = 1 and longitude = 2, doubles.
_ORIGIN_LATLNG = _ORIGIN + b"\x12" + b"\x09"
_LONGITUDE = b"\x11"
_double = struct.Struct("<d").pack


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, its length as a varint, its bytes."""
    return _tag_and_length(tag, len(body)) + body


def _tag_and_length(tag: bytes, n: int) -> bytes:
    """The start of a length-delimited field of ``n`` bytes: its tag, then n as a varint."""
    if n < 0x80:
        return tag + bytes((n,))
    length = bytearray()
    while n >= 0x80:
        length.append((n & 0x7F) | 0x80)
        n >>= 7
    length.append(n)
    return tag + bytes(length)


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
