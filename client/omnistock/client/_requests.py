"""Request builders: the per-method adapters both generated clients call (named by
``build`` in protos/omnistock/v1/sdk.toml) where the arguments are not plain fields,
and the public helpers ``cart``, ``origin`` and ``timestamp``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from omnistock.client._exceptions import InvalidRecordError, shorten
from omnistock.client._types import (
    CartLine,
    ChannelMethod,
    DeltaRecord,
    Exposure,
    FulfillmentMethod,
    IncomingLine,
    IncomingUpdate,
    LatLng,
    LocationKind,
    Origin,
    ReservationMethod,
    ReservationState,
    SkuChannel,
    SkuLocation,
    SnapshotRecord,
    StreamDeltasRequest,
)
from omnistock.v1 import availability_pb2, feed_pb2, location_pb2, reservation_pb2

Cart = Mapping[str, int] | Iterable[CartLine]


def cart(lines: Mapping[str, int]) -> list[CartLine]:
    """Cart lines from {sku: quantity}.

    >>> cart({"ELEC-10000": 2})
    [sku: "ELEC-10000"
    quantity: 2
    ]
    """
    return [CartLine(sku=sku, quantity=quantity) for sku, quantity in lines.items()]


def origin(
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    postal_code: str = "",
    country: str = "",
) -> Origin:
    """An origin from a position, or from a postal code (with an optional country).

    >>> origin(postal_code="1012 AB").postal_code
    '1012 AB'
    """
    if postal_code:
        return Origin(postal_code=postal_code, country=country)
    if latitude is None or longitude is None:
        raise ValueError("give latitude and longitude, or a postal code")
    return Origin(position=LatLng(latitude=latitude, longitude=longitude), country=country)


def _lines(value: Cart) -> list[CartLine]:
    return cart(value) if isinstance(value, Mapping) else list(value)


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp from an aware datetime, as a StockUpdate's or a DeltaRecord's
    ``source_updated_at`` needs; a naive datetime raises ValueError.

    >>> timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)).ToJsonString()
    '2026-01-02T03:04:05Z'
    """
    if value.tzinfo is None:
        raise ValueError("use an aware datetime, for example datetime.now(UTC)")
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def list_locations(
    *, kind: LocationKind | None, page_size: int, page_token: str
) -> location_pb2.ListLocationsRequest:
    return location_pb2.ListLocationsRequest(
        page_size=page_size,
        page_token=page_token,
        kind=0 if kind is None else int(kind),  # type: ignore[arg-type]
    )


def get_availability(
    *, sku: str, location_ids: Iterable[str], exposure: Exposure
) -> availability_pb2.GetAvailabilityRequest:
    return availability_pb2.GetAvailabilityRequest(
        sku=sku,
        location_ids=list(location_ids),
        exposure=int(exposure),  # type: ignore[arg-type]
    )


def channel_availability(
    *, sku: str, channel_id: str, method: ChannelMethod, quantity: int, exposure: Exposure
) -> availability_pb2.GetAvailabilityRequest:
    return availability_pb2.GetAvailabilityRequest(
        sku=sku,
        channel_id=channel_id,
        method=int(method),  # type: ignore[arg-type]
        quantity=quantity,
        exposure=int(exposure),  # type: ignore[arg-type]
    )


def batch_get_availability(
    *, pairs: Iterable[tuple[str, str]], exposure: Exposure
) -> availability_pb2.BatchGetAvailabilityRequest:
    return availability_pb2.BatchGetAvailabilityRequest(
        items=[SkuLocation(sku=sku, location_id=loc) for sku, loc in pairs],
        exposure=int(exposure),  # type: ignore[arg-type]
    )


def batch_channel_availability(
    *, items: Iterable[SkuChannel | tuple[str, str]], exposure: Exposure
) -> availability_pb2.BatchGetAvailabilityRequest:
    return availability_pb2.BatchGetAvailabilityRequest(
        channel_items=[
            item if isinstance(item, SkuChannel) else SkuChannel(sku=item[0], channel_id=item[1])
            for item in items
        ],
        exposure=int(exposure),  # type: ignore[arg-type]
    )


def search_nearby(
    *,
    cart: Cart,
    origin: Origin,
    radius_km: float | None,
    limit: int | None,
    open_now: bool,
    method: FulfillmentMethod,
    require_all: bool,
    exposure: Exposure,
    channel: str = "",
) -> availability_pb2.SearchNearbyRequest:
    request = availability_pb2.SearchNearbyRequest(
        channel_id=channel,
        lines=_lines(cart),
        origin=origin,
        open_now=open_now,
        method=int(method),  # type: ignore[arg-type]
        require_all=require_all,
        exposure=int(exposure),  # type: ignore[arg-type]
    )
    return _with_optional(request, radius_km=radius_km, limit=limit)


def fulfillment_options(
    *, cart: Cart, origin: Origin, radius_km: float | None, channel: str = ""
) -> availability_pb2.GetFulfillmentOptionsRequest:
    request = availability_pb2.GetFulfillmentOptionsRequest(
        lines=_lines(cart), origin=origin, channel_id=channel
    )
    return _with_optional(request, radius_km=radius_km)


def watch(
    *,
    pairs: Iterable[tuple[str, str]],
    skus: Iterable[str],
    origin: Origin | None,
    radius_km: float | None,
    limit: int | None,
    exposure: Exposure,
    heartbeat_seconds: int | None,
    resume_token: str,
) -> availability_pb2.WatchAvailabilityRequest:
    request = availability_pb2.WatchAvailabilityRequest(
        pairs=[SkuLocation(sku=sku, location_id=loc) for sku, loc in pairs],
        skus=list(skus),
        origin=origin,
        exposure=int(exposure),  # type: ignore[arg-type]
        resume_token=resume_token,
    )
    return _with_optional(
        request, radius_km=radius_km, limit=limit, heartbeat_seconds=heartbeat_seconds
    )


M = TypeVar("M", bound=Message)


def _with_optional(request: M, **fields: object) -> M:
    """``request`` with each optional (proto3 ``optional``) field that is not None set."""
    for name, value in fields.items():
        if value is not None:
            setattr(request, name, value)
    return request


def snapshot(
    *,
    location_id: str,
    as_of: datetime,
    records: Iterable[SnapshotRecord | tuple[str, int]],
    batch_size: int,
) -> Iterator[feed_pb2.ImportSnapshotRequest]:
    """The header with the first batch, then batches as ``records`` is read. The header
    is made here, so that a naive ``as_of`` raises ValueError before any call."""
    header = feed_pb2.SnapshotHeader(location_id=location_id, as_of=timestamp(as_of))
    return _snapshot_batches(header, records, batch_size)


def _snapshot_batches(
    header: feed_pb2.SnapshotHeader,
    records: Iterable[SnapshotRecord | tuple[str, int]],
    batch_size: int,
) -> Iterator[feed_pb2.ImportSnapshotRequest]:
    batch: list[SnapshotRecord] = []
    first = True
    for index, record in enumerate(records):
        batch.append(snapshot_record(index, record))
        if len(batch) >= batch_size:
            yield feed_pb2.ImportSnapshotRequest(header=header if first else None, records=batch)
            first, batch = False, []
    # Only a stream whose last message says so is applied: one that ends for any other
    # reason (this generator raising, the call cancelled) writes nothing.
    yield feed_pb2.ImportSnapshotRequest(
        header=header if first else None, records=batch, complete=True
    )


def snapshot_record(index: int, record: SnapshotRecord | tuple[str, int]) -> SnapshotRecord:
    """The record as a message; InvalidRecordError naming it when it cannot be one."""
    if isinstance(record, SnapshotRecord):
        return record
    try:
        sku, on_hand = record
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(
            f"is a {type(record).__name__}, not a SnapshotRecord or a (sku, on_hand) pair",
            batch=None, index=index, sku="", field="",
        ) from error  # fmt: skip
    try:
        return SnapshotRecord(sku=sku, on_hand=on_hand)
    except (TypeError, ValueError):  # _encode finds the field and raises, naming it
        return _encode(SnapshotRecord, {"sku": sku, "on_hand": on_hand}, batch=None, index=index)


DeltaBatch = StreamDeltasRequest | Sequence[DeltaRecord | Mapping[str, Any]]


def delta_batches(*, batches: Iterable[DeltaBatch]) -> Iterator[StreamDeltasRequest]:
    """The batches as requests, numbered from 0, made as ``batches`` is read."""
    return (delta_batch(number, batch) for number, batch in enumerate(batches))


def delta_batch(number: int, batch: DeltaBatch) -> StreamDeltasRequest:
    if isinstance(batch, StreamDeltasRequest):
        return batch
    records = [delta_record(number, index, record) for index, record in enumerate(batch)]
    return StreamDeltasRequest(batch_id=str(number), records=records)


def delta_record(batch: int, index: int, record: DeltaRecord | Mapping[str, Any]) -> DeltaRecord:
    """A DeltaRecord, or one made of a mapping of its fields (``source_updated_at`` may
    be an aware datetime); InvalidRecordError naming it when it cannot be one."""
    if isinstance(record, DeltaRecord):
        return record
    sku = record.get("sku", "") if isinstance(record, Mapping) else ""
    sku = sku if isinstance(sku, str) else ""
    if not isinstance(record, Mapping):
        raise InvalidRecordError(
            f"is a {type(record).__name__}, not a DeltaRecord or a mapping of its fields",
            batch=batch, index=index, sku=sku, field="",
        )  # fmt: skip
    fields = dict(record)
    at = fields.get("source_updated_at")
    if isinstance(at, datetime):
        try:
            fields["source_updated_at"] = timestamp(at)
        except ValueError as error:
            raise InvalidRecordError(
                str(error), batch=batch, index=index, sku=sku, field="source_updated_at"
            ) from error
    return _encode(DeltaRecord, fields, batch=batch, index=index)


IncomingUpdates = Iterable[IncomingUpdate | Mapping[str, Any]]
IncomingLines = Iterable[IncomingLine | tuple[str, str, int, date | str]]


def incoming_updates(*, updates: IncomingUpdates) -> feed_pb2.ApplyIncomingUpdatesRequest:
    """The batch as a request: each update an IncomingUpdate, or a mapping of its fields
    (``expected_date`` may be a date, ``source_updated_at`` an aware datetime);
    InvalidRecordError naming one that cannot be sent."""
    messages = []
    for index, update in enumerate(updates):
        if isinstance(update, IncomingUpdate):
            messages.append(update)
            continue
        if not isinstance(update, Mapping):
            raise InvalidRecordError(
                f"is a {type(update).__name__}, not an IncomingUpdate or a mapping of its fields",
                batch=None, index=index, sku="", field="",
            )  # fmt: skip
        fields = dict(update)
        sku = fields.get("sku")
        sku = sku if isinstance(sku, str) else ""
        at = fields.get("source_updated_at")
        if isinstance(at, datetime):
            try:
                fields["source_updated_at"] = timestamp(at)
            except ValueError as error:
                raise InvalidRecordError(
                    str(error), batch=None, index=index, sku=sku, field="source_updated_at"
                ) from error
        fields["expected_date"] = _day(fields.get("expected_date"))
        messages.append(_encode(IncomingUpdate, fields, batch=None, index=index))
    return feed_pb2.ApplyIncomingUpdatesRequest(updates=messages)


def incoming_snapshot(
    *, location_id: str, as_of: datetime, lines: IncomingLines
) -> feed_pb2.ImportIncomingSnapshotRequest:
    """The snapshot as a request: each line an IncomingLine or a (sku, line_id, quantity,
    expected_date) tuple, the date a ``date`` or "YYYY-MM-DD"; a naive ``as_of`` raises
    ValueError, a line that cannot be sent InvalidRecordError naming it."""
    request = feed_pb2.ImportIncomingSnapshotRequest(
        location_id=location_id, as_of=timestamp(as_of)
    )
    for index, line in enumerate(lines):
        if isinstance(line, IncomingLine):
            request.lines.append(line)
            continue
        try:
            sku, line_id, quantity, expected = line
        except (TypeError, ValueError) as error:
            raise InvalidRecordError(
                f"is a {type(line).__name__}, not an IncomingLine or a (sku, line_id, "
                "quantity, expected_date) tuple",
                batch=None, index=index, sku="", field="",
            ) from error  # fmt: skip
        fields = {"sku": sku, "line_id": line_id, "quantity": quantity}
        fields["expected_date"] = _day(expected)
        request.lines.append(_encode(IncomingLine, fields, batch=None, index=index))
    return request


def _day(value: object) -> object:
    """A date as the "YYYY-MM-DD" a message carries (a datetime is left to fail)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


R = TypeVar("R", SnapshotRecord, DeltaRecord, IncomingUpdate, IncomingLine)

_WHOLE_NUMBERS = frozenset({FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64})


def _encode(kind: type[R], fields: dict[str, Any], *, batch: int | None, index: int) -> R:
    try:
        return kind(**fields)
    except (TypeError, ValueError) as error:
        # Which field: the first that will not go into a message on its own.
        field = next((name for name, value in fields.items() if not _fits(kind, name, value)), "")
        sku = fields.get("sku")
        descriptor = kind.DESCRIPTOR.fields_by_name.get(field)
        if descriptor is not None and descriptor.cpp_type in _WHOLE_NUMBERS:
            bits = 64 if descriptor.cpp_type == FieldDescriptor.CPPTYPE_INT64 else 32
            problem = f"must be an int within int{bits}, not {shorten(repr(fields[field]))}"
        else:
            problem = str(error)
        raise InvalidRecordError(
            problem, batch=batch, index=index, sku=sku if isinstance(sku, str) else "", field=field
        ) from error


def _fits(kind: type[Message], name: str, value: object) -> bool:
    try:
        kind(**{name: value})
    except (TypeError, ValueError):
        return False
    return True


def create_reservation(
    *,
    location_id: str,
    lines: Mapping[str, int],
    method: ReservationMethod,
    ttl: timedelta | None,
    idempotency_key: str | None,
    customer_reference: str,
    channel: str = "",
    channel_method: ChannelMethod | None = None,
    origin: Origin | None = None,
) -> reservation_pb2.CreateReservationRequest:
    """A hold at ``location_id``, or (``location_id`` empty) a network hold through
    ``channel``, placed by ``channel_method`` (SHIP when None) near ``origin``."""
    request = reservation_pb2.CreateReservationRequest(
        location_id=location_id,
        channel_id=channel,
        channel_method=0 if channel_method is None else int(channel_method),  # type: ignore[arg-type]
        lines=[reservation_pb2.ReservationLine(sku=s, quantity=q) for s, q in lines.items()],
        method=int(method),  # type: ignore[arg-type]
        # A key on every create, so that a retry can never hold twice.
        idempotency_key=idempotency_key if idempotency_key is not None else uuid.uuid4().hex,
        customer_reference=customer_reference,
    )
    if ttl is not None:
        request.ttl.FromTimedelta(ttl)
    if origin is not None:
        request.origin.CopyFrom(origin)
    return request


def list_reservations(
    *, location_id: str, state: ReservationState | None, page_size: int, page_token: str
) -> reservation_pb2.ListReservationsRequest:
    return reservation_pb2.ListReservationsRequest(
        location_id=location_id,
        state=0 if state is None else int(state),  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )


def extend_reservation(
    *, reservation_id: str, ttl: timedelta
) -> reservation_pb2.ExtendReservationRequest:
    request = reservation_pb2.ExtendReservationRequest(reservation_id=reservation_id)
    request.ttl.FromTimedelta(ttl)
    return request
