"""Reservations: holds of stock at one location, their states and their time limits.

    ACTIVE ──commit──> COMMITTED ──fulfil / newer feed update──> (stops counting)
       │
       ├──release──> RELEASED
       └──TTL runs out──> EXPIRED

An active hold counts in the record's ``reserved`` at once; a committed one keeps
counting until the store's own stock shows the sale (a feed update of the record
newer than the commit) or until it is fulfilled. Asking for the state a
reservation is already in is a no-op; any other move is refused.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from omnistock.server.domain.channels import ChannelMethod
from omnistock.server.domain.errors import AlreadyExists, FailedPrecondition


class ReservationMethod(enum.Enum):
    PICKUP = "PICKUP"
    CHECKOUT = "CHECKOUT"


class ReservationState(enum.Enum):
    ACTIVE = "ACTIVE"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class TtlPolicy:
    """The default and longest TTL of each method."""

    pickup_default: timedelta = timedelta(hours=2)
    pickup_max: timedelta = timedelta(hours=72)
    checkout_default: timedelta = timedelta(minutes=15)
    checkout_max: timedelta = timedelta(hours=2)

    def default(self, method: ReservationMethod) -> timedelta:
        return self.pickup_default if method is ReservationMethod.PICKUP else self.checkout_default

    def maximum(self, method: ReservationMethod) -> timedelta:
        return self.pickup_max if method is ReservationMethod.PICKUP else self.checkout_max


@dataclass(frozen=True, slots=True)
class ReservationLine:
    sku: str
    quantity: int
    # The part of quantity held from incoming supply (a network hold's pre-order line).
    incoming_quantity: int = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    location_id: str
    lines: tuple[ReservationLine, ...]
    method: ReservationMethod
    state: ReservationState
    created_at: datetime
    expires_at: datetime
    idempotency_key: str = ""
    customer_reference: str = ""
    committed_at: datetime | None = None
    ended_at: datetime | None = None
    holds_stock: bool = True
    # A network hold's channel and method ("" and None for a hold made at a location).
    channel_id: str = ""
    channel_method: ChannelMethod | None = None

    def as_of(self, now: datetime) -> Reservation:
        """The reservation as it stands at ``now``: an active hold past its expiry reads as
        EXPIRED (and holds nothing) before any sweep has recorded it."""
        if self.state is ReservationState.ACTIVE and self.expires_at <= now:
            return replace(
                self, state=ReservationState.EXPIRED, ended_at=self.expires_at, holds_stock=False
            )
        return self


@dataclass(frozen=True, slots=True)
class NewReservation:
    """A validated CreateReservation request."""

    location_id: str
    lines: tuple[ReservationLine, ...]
    method: ReservationMethod
    ttl: timedelta
    idempotency_key: str = ""
    customer_reference: str = ""
    # The principal (API key id) making it: idempotency keys are per principal.
    owner: str = ""
    # A network hold: the channel and method it is placed through (location_id is then
    # empty until it is placed), and the origin it is placed near, as given.
    channel_id: str = ""
    channel_method: ChannelMethod | None = None
    origin: str = ""
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        # What makes two requests "the same" for an idempotency key: everything the
        # caller chose, lines in sku order.
        parts = [
            self.location_id,
            self.method.value,
            str(self.ttl.total_seconds()),
            self.customer_reference,
            *(
                [
                    self.channel_id,
                    self.channel_method.name if self.channel_method else "",
                    self.origin,
                ]
                if self.channel_id
                else []
            ),
            *(f"{line.sku}={line.quantity}" for line in sorted(self.lines, key=_by_sku)),
        ]
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
        object.__setattr__(self, "fingerprint", digest)


def _by_sku(line: ReservationLine) -> str:
    return line.sku


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One line the location cannot hold: what was asked, and what is available (None
    when the caller may not see counts)."""

    sku: str
    requested: int
    available: int | None


class InsufficientStock(FailedPrecondition):
    """Too little stock for one or more lines; nothing was held.

    The message and each violation say what was asked and, to a caller granted EXACT,
    what is available: ``requested 1000, available 7``. To any other caller a short line
    is ``requested 1000, not available``, so the refusal states no count.
    """

    reason = "INSUFFICIENT_STOCK"

    def __init__(self, location_id: str, shortfalls: Sequence[Shortfall]) -> None:
        self.shortfalls = list(shortfalls)
        shown = ", ".join(f"{s.sku} ({_short(s)})" for s in self.shortfalls)
        super().__init__(f"not enough stock at {location_id}: {shown}")
        # One PreconditionFailure violation per short line: the subject is the sku.
        self.violations = [("INSUFFICIENT_STOCK", s.sku, _short(s)) for s in self.shortfalls]


def _short(shortfall: Shortfall) -> str:
    if shortfall.available is None:
        return f"requested {shortfall.requested}, not available"
    return f"requested {shortfall.requested}, available {shortfall.available}"


class IdempotencyKeyReused(AlreadyExists):
    """The idempotency key names a reservation made for a different request."""

    def __init__(self, key: str, reservation_id: str) -> None:
        super().__init__(
            "reservation",
            reservation_id,
            f"idempotency key {key!r} was used for a different request (reservation "
            f"{reservation_id}); use a new key for a new request",
            reason="IDEMPOTENCY_KEY_REUSED",
        )


class WrongState(FailedPrecondition):
    """A move the reservation's state does not allow."""

    reason = "RESERVATION_STATE"

    def __init__(self, reservation: Reservation, action: str, allowed: str) -> None:
        super().__init__(
            f"cannot {action} reservation {reservation.id}: it is {reservation.state.value}, "
            f"and only {allowed} reservations can be"
        )
        if reservation.state is ReservationState.EXPIRED:
            self.reason = "RESERVATION_EXPIRED"
        self.violations = [
            ("STATE", f"reservations/{reservation.id}", f"is {reservation.state.value}")
        ]


def check_move(reservation: Reservation, action: str) -> bool:
    """Whether ``action`` changes ``reservation`` (False: it is already done, a no-op).
    Raises WrongState for a move its state forbids."""
    state = reservation.state
    if action == "commit":
        if state is ReservationState.COMMITTED:
            return False
        if state is not ReservationState.ACTIVE:
            raise WrongState(reservation, "commit", "ACTIVE")
    elif action == "release":
        if state is ReservationState.RELEASED:
            return False
        if state is not ReservationState.ACTIVE:
            raise WrongState(reservation, "release", "ACTIVE")
    elif action == "extend":
        if state is not ReservationState.ACTIVE:
            raise WrongState(reservation, "extend", "ACTIVE")
    elif action == "fulfil":
        if state is not ReservationState.COMMITTED:
            raise WrongState(reservation, "fulfil", "COMMITTED")
        return reservation.holds_stock
    else:  # pragma: no cover - a programming error
        raise ValueError(action)
    return True


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reservation_id() -> str:
    """ "rsv_" and a ULID: 48 bits of milliseconds and 80 random bits, in Crockford base 32,
    so ids sort by creation time and page in that order."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "rsv_" + "".join(reversed(chars))
