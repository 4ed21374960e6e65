"""ReservationService: proto <-> domain, and nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from grpc import aio
from omnistock.server.domain.channels import ChannelMethod
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.reservations import (
    NewReservation,
    Reservation,
    ReservationLine,
    ReservationMethod,
    ReservationState,
)
from omnistock.server.domain.stock import DEFAULT_BANDED_MAX_QUANTITY, check_quantity_asked
from omnistock.server.service.limits import MAX_QUANTITY
from omnistock.server.service.origins import Origin
from omnistock.server.service.reservations import ReservationService
from omnistock.server.transport.auth import audit_note, principal
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.convert import datetime_to_timestamp
from omnistock.server.transport.pages import PageTokens
from omnistock.server.transport.shopping import parse_origin
from omnistock.v1 import channel_pb2, reservation_pb2, reservation_pb2_grpc

MAX_RESERVATION_LINES = 100
MAX_KEY_LENGTH = 128
_RESERVATION_ID = re.compile(r"rsv_[0-9A-HJKMNP-TV-Z]{26}")

_METHODS = {
    reservation_pb2.RESERVATION_METHOD_PICKUP: ReservationMethod.PICKUP,
    reservation_pb2.RESERVATION_METHOD_CHECKOUT: ReservationMethod.CHECKOUT,
}
_METHOD_TO_PROTO = {method: value for value, method in _METHODS.items()}
_STATES = {
    reservation_pb2.RESERVATION_STATE_ACTIVE: ReservationState.ACTIVE,
    reservation_pb2.RESERVATION_STATE_COMMITTED: ReservationState.COMMITTED,
    reservation_pb2.RESERVATION_STATE_RELEASED: ReservationState.RELEASED,
    reservation_pb2.RESERVATION_STATE_EXPIRED: ReservationState.EXPIRED,
}
_STATE_TO_PROTO = {state: value for value, state in _STATES.items()}
_CHANNEL_METHODS = {
    channel_pb2.CHANNEL_METHOD_UNSPECIFIED: ChannelMethod.SHIP,
    channel_pb2.CHANNEL_METHOD_SHIP: ChannelMethod.SHIP,
    channel_pb2.CHANNEL_METHOD_PICKUP: ChannelMethod.PICKUP,
}
_CHANNEL_METHOD_TO_PROTO = {
    ChannelMethod.SHIP: channel_pb2.CHANNEL_METHOD_SHIP,
    ChannelMethod.PICKUP: channel_pb2.CHANNEL_METHOD_PICKUP,
}


def reservation_to_proto(r: Reservation) -> reservation_pb2.Reservation:
    return reservation_pb2.Reservation(
        reservation_id=r.id,
        location_id=r.location_id,
        lines=[
            reservation_pb2.ReservationLine(
                sku=x.sku, quantity=x.quantity, incoming_quantity=x.incoming_quantity
            )
            for x in r.lines
        ],
        method=_METHOD_TO_PROTO[r.method],
        state=_STATE_TO_PROTO[r.state],
        customer_reference=r.customer_reference,
        idempotency_key=r.idempotency_key,
        create_time=datetime_to_timestamp(r.created_at),
        expire_time=datetime_to_timestamp(r.expires_at),
        commit_time=None if r.committed_at is None else datetime_to_timestamp(r.committed_at),
        end_time=None if r.ended_at is None else datetime_to_timestamp(r.ended_at),
        holds_stock=r.holds_stock,
        channel_id=r.channel_id,
        channel_method=_CHANNEL_METHOD_TO_PROTO.get(r.channel_method, 0),  # type: ignore[arg-type]
    )


def check_reservation_id(v: Violations, value: str) -> None:
    if not value:
        v.add("reservation_id", "is required")
    elif not _RESERVATION_ID.fullmatch(value):
        v.add("reservation_id", "is not a reservation id (rsv_ and 26 characters)")


def _check_text(v: Violations, value: str, field: str) -> None:
    v.check(len(value) <= MAX_KEY_LENGTH, field, f"must be at most {MAX_KEY_LENGTH} characters")
    v.check(value.isprintable(), field, "must be printable text")


def _ttl(v: Violations, request: Any, field: str) -> timedelta | None:
    if not request.HasField(field):
        return None
    duration = getattr(request, field)
    if not (0 <= duration.nanos < 1_000_000_000 and abs(duration.seconds) <= 10**9):
        v.add(field, "is not a valid duration")
        return None
    return timedelta(seconds=duration.seconds, microseconds=duration.nanos // 1000)


class ReservationServicer(reservation_pb2_grpc.ReservationServiceServicer):
    """Scope rules: transport.scope. Reservations are read through the caller's scope, so
    one at a location it may not see is NOT_FOUND exactly as one that does not exist."""

    def __init__(
        self,
        service: ReservationService,
        runner: BlockingRunner,
        pages: PageTokens,
        *,
        banded_max_quantity: int = DEFAULT_BANDED_MAX_QUANTITY,
    ) -> None:
        self._service = service
        self._runner = runner
        self._pages = pages
        self._banded_max_quantity = banded_max_quantity

    async def CreateReservation(
        self,
        request: reservation_pb2.CreateReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.CreateReservationResponse:
        v = Violations()
        who = principal()
        network = _network(v, request)
        if network is None:
            check_id(v, request.location_id, "location_id")
        if not request.lines:
            v.add("lines", "must not be empty")
        elif len(request.lines) > MAX_RESERVATION_LINES:
            v.add("lines", f"must hold at most {MAX_RESERVATION_LINES} lines")
        lines = []
        seen: set[str] = set()
        for i, line in enumerate(request.lines[:MAX_RESERVATION_LINES]):
            check_id(v, line.sku, f"lines[{i}].sku")
            if line.sku in seen:
                v.add(f"lines[{i}].sku", f"repeats {line.sku!r}: give each sku one line")
            seen.add(line.sku)
            if not 1 <= line.quantity <= MAX_QUANTITY:
                v.add(f"lines[{i}].quantity", f"must be within [1, {MAX_QUANTITY}]")
            else:
                check_quantity_asked(
                    v,
                    f"lines[{i}].quantity",
                    line.quantity,
                    granted=who.exposure,
                    banded_max=self._banded_max_quantity,
                )
            lines.append(ReservationLine(line.sku, line.quantity))
        method = _METHODS.get(request.method)
        if method is None:
            v.add("method", "must be PICKUP or CHECKOUT")
        ttl = _ttl(v, request, "ttl")
        if method is not None:
            policy = self._service.ttl
            if ttl is None:
                ttl = policy.default(method)
            self._service.check_ttl(v, ttl, policy.maximum(method), "ttl")
        _check_text(v, request.idempotency_key, "idempotency_key")
        _check_text(v, request.customer_reference, "customer_reference")
        v.raise_if_any()
        assert method is not None and ttl is not None
        if network is not None:
            who.require_channels([network.channel_id])
        new = NewReservation(
            owner=principal().key_id,
            location_id=request.location_id,
            lines=tuple(lines),
            method=method,
            ttl=ttl,
            idempotency_key=request.idempotency_key,
            customer_reference=request.customer_reference,
            channel_id=network.channel_id if network else "",
            channel_method=network.method if network else None,
            origin=network.origin_key if network else "",
        )
        reservation, _ = await self._runner.write(
            self._service.create,
            new,
            exposure=who.exposure,
            origin=network.origin if network else None,
            visible=who.locations,
            noted=lambda made: _note(made[0]),
        )
        return reservation_pb2.CreateReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def GetReservation(
        self, request: reservation_pb2.GetReservationRequest, context: aio.ServicerContext[Any, Any]
    ) -> reservation_pb2.GetReservationResponse:
        reservation = await self._by_id(request.reservation_id, self._service.get)
        return reservation_pb2.GetReservationResponse(reservation=reservation_to_proto(reservation))

    async def ListReservations(
        self,
        request: reservation_pb2.ListReservationsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.ListReservationsResponse:
        v = Violations()
        if request.location_id:
            check_id(v, request.location_id, "location_id")
        paging = self._pages.read(
            v,
            request.page_size,
            request.page_token,
            "ListReservations",
            request.location_id,
            request.state,
        )
        state = _STATES.get(request.state)
        v.check(
            state is not None or request.state == reservation_pb2.RESERVATION_STATE_UNSPECIFIED,
            "state",
            "must be a reservation state or unset",
        )
        v.raise_if_any()
        page, next_after = await self._runner.run(
            self._service.list,
            location_id=request.location_id,
            state=state,
            after_id=paging.after,
            limit=paging.size,
            visible=principal().locations,
        )
        return reservation_pb2.ListReservationsResponse(
            reservations=[reservation_to_proto(r) for r in page],
            next_page_token=self._pages.next_token(paging, next_after),
        )

    async def ExtendReservation(
        self,
        request: reservation_pb2.ExtendReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.ExtendReservationResponse:
        v = Violations()
        check_reservation_id(v, request.reservation_id)
        ttl = _ttl(v, request, "ttl")
        if ttl is None and "ttl" not in {f.field for f in v.items}:
            v.add("ttl", "is required")
        v.raise_if_any()
        assert ttl is not None
        reservation = await self._runner.write(
            self._service.extend,
            request.reservation_id,
            ttl,
            visible=principal().locations,
            noted=_note,
        )
        return reservation_pb2.ExtendReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def CommitReservation(
        self,
        request: reservation_pb2.CommitReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.CommitReservationResponse:
        reservation = await self._by_id(request.reservation_id, self._service.commit)
        return reservation_pb2.CommitReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def FulfillReservation(
        self,
        request: reservation_pb2.FulfillReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.FulfillReservationResponse:
        reservation = await self._by_id(request.reservation_id, self._service.fulfil)
        return reservation_pb2.FulfillReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def ReleaseReservation(
        self,
        request: reservation_pb2.ReleaseReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.ReleaseReservationResponse:
        reservation = await self._by_id(request.reservation_id, self._service.release)
        return reservation_pb2.ReleaseReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def MoveReservation(
        self,
        request: reservation_pb2.MoveReservationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> reservation_pb2.MoveReservationResponse:
        v = Violations()
        check_reservation_id(v, request.reservation_id)
        if request.location_id:
            check_id(v, request.location_id, "location_id")
        v.raise_if_any()
        reservation = await self._runner.write(
            self._service.move,
            request.reservation_id,
            request.location_id,
            visible=principal().locations,
            noted=_note,
        )
        return reservation_pb2.MoveReservationResponse(
            reservation=reservation_to_proto(reservation)
        )

    async def _by_id(self, reservation_id: str, call: Callable[..., Reservation]) -> Reservation:
        v = Violations()
        check_reservation_id(v, reservation_id)
        v.raise_if_any()
        return await self._runner.write(
            call, reservation_id, visible=principal().locations, noted=_note
        )


def _note(reservation: Reservation) -> None:
    """Note a written reservation for the audit log."""
    audit_note(reservation_id=reservation.id, location_id=reservation.location_id)


@dataclass(frozen=True, slots=True)
class _Network:
    channel_id: str
    method: ChannelMethod
    origin: Origin | None
    # The origin as the idempotency fingerprint weighs it.
    origin_key: str


def _network(v: Violations, request: reservation_pb2.CreateReservationRequest) -> _Network | None:
    """A network hold's channel, method and origin (None: a hold at a location). Exactly
    one of location_id and channel_id."""
    if not request.channel_id:
        if request.channel_method or request.HasField("origin"):
            v.add("channel_id", "is required with channel_method or origin")
        return None
    check_id(v, request.channel_id, "channel_id")
    if request.location_id:
        v.add("location_id", "give location_id or channel_id, not both")
    method = _CHANNEL_METHODS.get(request.channel_method)
    if method is None:
        v.add("channel_method", "must be SHIP or PICKUP")
        method = ChannelMethod.SHIP
    origin = None
    if request.HasField("origin"):
        origin = parse_origin(v, True, request.origin)
    key = "" if origin is None else repr(origin)
    return _Network(request.channel_id, method, origin, key)
