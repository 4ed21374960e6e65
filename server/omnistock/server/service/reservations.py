"""Reservations: validation against the location, idempotency, states, and the sweeper.

The store makes every change in one transaction (store.reservations); this layer
decides which change a request asks for, explains refusals, and keeps the read
cache true: each hold or release invalidates the records it touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from omnistock.server.domain.channel_holds import local_today
from omnistock.server.domain.errors import NotFound, Violations
from omnistock.server.domain.reservations import (
    IdempotencyKeyReused,
    InsufficientStock,
    NewReservation,
    Reservation,
    ReservationState,
    Shortfall,
    TtlPolicy,
    check_move,
    new_reservation_id,
)
from omnistock.server.domain.stock import (
    Exposure,
    StockPolicy,
    StockRecord,
    available_to_sell,
    is_stale,
    reserved_at,
)
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.service.changes import ChangeBus, Changes
from omnistock.server.service.network_holds import (
    CannotMoveThere,
    MovedMeanwhile,
    NetworkPlacer,
    check_movable,
)
from omnistock.server.service.origins import Origin
from omnistock.server.store.hold_placement import ShortLines
from omnistock.server.store.reservations import HoldTerms, ReservationStore
from omnistock.server.store.stock import StockRepository

Change = tuple[str] | tuple[str, int] | None


class ReservationService:
    def __init__(
        self,
        store: ReservationStore,
        stock: StockRepository,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
        changes: ChangeBus,
        ttl: TtlPolicy | None = None,
        placer: NetworkPlacer | None = None,
    ) -> None:
        self._placer = placer
        self._store = store
        self._stock = stock
        self._directory = directory
        self._clock = clock
        self._changes = changes
        self.ttl = ttl or TtlPolicy()

    def check_ttl(self, v: Violations, new_ttl: timedelta, maximum: timedelta, field: str) -> None:
        v.check(new_ttl > timedelta(0), field, "must be positive")
        v.check(
            new_ttl <= maximum,
            field,
            f"must be at most {_duration(maximum)} for this method",
        )

    def create(
        self,
        new: NewReservation,
        *,
        exposure: Exposure = Exposure.EXACT,
        origin: Origin | None = None,
        visible: frozenset[str] | None = None,
    ) -> tuple[Reservation, bool]:
        """Hold every line of ``new`` or none; (reservation, made now). A refusal states
        what is available only to a caller whose ``exposure`` is EXACT."""
        if new.channel_id:
            return self._create_network(new, origin, visible)
        (location,) = self._directory.require([new.location_id])
        policy = location.stock_policy
        now = self._clock()
        try:
            terms = HoldTerms(
                now_us=to_micros(now),
                expires_at_us=to_micros(now + new.ttl),
                fresh_after_us=to_micros(now - policy.freshness_budget),
                default_safety=policy.safety_stock_for(None),
            )
            stored, created = self._store.create(new_reservation_id(), new, terms)
        except ShortLines as short:
            if exposure is not Exposure.EXACT:
                raise InsufficientStock(
                    new.location_id,
                    [Shortfall(line.sku, line.quantity, None) for line in short.lines],
                ) from None
            records = self._stock.records_for_pairs(
                [(line.sku, new.location_id) for line in short.lines]
            )
            raise InsufficientStock(
                new.location_id,
                [
                    Shortfall(
                        line.sku,
                        line.quantity,
                        _available(records.get((line.sku, new.location_id)), policy, now),
                    )
                    for line in short.lines
                ],
            ) from None
        if not created and stored.fingerprint != new.fingerprint:
            raise IdempotencyKeyReused(new.idempotency_key, stored.reservation.id)
        if created:
            self._invalidate(stored.reservation)
        return stored.reservation.as_of(now), created

    def _create_network(
        self, new: NewReservation, origin: Origin | None, visible: frozenset[str] | None
    ) -> tuple[Reservation, bool]:
        """A network hold: at the first location of the channel, by the placement rule,
        that can take every line (``visible``: the caller's scope narrows the candidates).
        A retry with the same idempotency key returns the first hold, even if stock moved."""
        assert self._placer is not None and new.channel_method is not None
        now = self._clock()
        if new.idempotency_key:
            earlier = self._store.by_key(new.owner, new.idempotency_key)
            if earlier is not None:
                if earlier.fingerprint != new.fingerprint:
                    raise IdempotencyKeyReused(new.idempotency_key, earlier.reservation.id)
                return earlier.reservation.as_of(now), False
        view = self._placer.view(new.channel_id, new.channel_method)
        placements = self._placer.placements(
            view,
            new.channel_method,
            new.lines,
            now,
            visible=visible,
            point=self._placer.point(origin, visible),
        )
        if not placements:
            raise self._placer.refusal(view, new.lines)
        terms = HoldTerms(to_micros(now), to_micros(now + new.ttl), 0, 0)
        try:
            stored, created = self._store.create(new_reservation_id(), new, terms, placements)
        except ShortLines:
            raise self._placer.refusal(view, new.lines) from None
        if not created and stored.fingerprint != new.fingerprint:
            raise IdempotencyKeyReused(new.idempotency_key, stored.reservation.id)
        if created:
            self._invalidate(stored.reservation)
        return stored.reservation.as_of(now), created

    def move(
        self, reservation_id: str, location_id: str, *, visible: frozenset[str] | None = None
    ) -> Reservation:
        """Move an active network hold to ``location_id`` (empty: the best other location
        of its channel by the placement rule), all or nothing."""
        assert self._placer is not None
        now = self._clock()
        stored = self._store.get(reservation_id)
        if stored is None or not _sees(visible, stored.reservation):
            raise _not_found(reservation_id)
        current = stored.reservation
        check_movable(current, now)
        assert current.channel_method is not None
        view = self._placer.view(current.channel_id, current.channel_method)
        among = {location_id} if location_id else view.location_ids - {current.location_id}
        placements = self._placer.placements(
            view, current.channel_method, current.lines, now, visible=visible, among=among
        )

        def decide(locked: Reservation) -> None:
            check_movable(locked, now)
            if locked.location_id != current.location_id:
                raise MovedMeanwhile(locked.id)

        refusal = CannotMoveThere(reservation_id, location_id or f"channel {view.channel.id}")
        if not placements or location_id == current.location_id:
            raise refusal
        try:
            moved = self._store.move(reservation_id, placements, decide, now_us=to_micros(now))
        except ShortLines:
            raise refusal from None
        if moved is None:
            raise _not_found(reservation_id)
        before, after = moved
        self._invalidate(before)
        self._invalidate(after)
        return after.as_of(now)

    # ``visible`` below: the locations whose reservations a caller may see (its scope;
    # None: all). A reservation elsewhere reads exactly as one that does not exist.

    def get(self, reservation_id: str, *, visible: frozenset[str] | None = None) -> Reservation:
        stored = self._store.get(reservation_id)
        if stored is None or not _sees(visible, stored.reservation):
            raise _not_found(reservation_id)
        return stored.reservation.as_of(self._clock())

    def list(
        self,
        *,
        location_id: str,
        state: ReservationState | None,
        after_id: str,
        limit: int,
        visible: frozenset[str] | None = None,
    ) -> tuple[list[Reservation], str | None]:
        """A page of reservations and the id to continue after (None on the last page).
        The scope narrows the query, so every page but the last is full."""
        now = self._clock()
        found = self._store.list_page(
            location_id=location_id,
            state=state,
            after_id=after_id,
            limit=limit + 1,
            now_us=to_micros(now),
            locations=visible,
        )
        page = [r.as_of(now) for r in found[:limit]]
        return page, (page[-1].id if len(found) > limit else None)

    def commit(self, reservation_id: str, *, visible: frozenset[str] | None = None) -> Reservation:
        return self._move(reservation_id, "commit", visible)

    def release(self, reservation_id: str, *, visible: frozenset[str] | None = None) -> Reservation:
        return self._move(reservation_id, "release", visible)

    def fulfil(self, reservation_id: str, *, visible: frozenset[str] | None = None) -> Reservation:
        return self._move(reservation_id, "fulfil", visible)

    def extend(
        self, reservation_id: str, ttl: timedelta, *, visible: frozenset[str] | None = None
    ) -> Reservation:
        now = self._clock()

        def decide(reservation: Reservation) -> Change:
            if not _sees(visible, reservation):
                raise _not_found(reservation_id)
            current = reservation.as_of(now)
            check_move(current, "extend")
            v = Violations()
            self.check_ttl(v, ttl, self.ttl.maximum(current.method), "ttl")
            v.raise_if_any()
            return ("extend", to_micros(now + ttl))

        return self._transition(reservation_id, decide, now)

    def _move(
        self, reservation_id: str, action: str, visible: frozenset[str] | None
    ) -> Reservation:
        now = self._clock()

        def decide(reservation: Reservation) -> Change:
            if not _sees(visible, reservation):
                raise _not_found(reservation_id)
            return (action,) if check_move(reservation.as_of(now), action) else None

        return self._transition(reservation_id, decide, now)

    def _transition(
        self, reservation_id: str, decide: Callable[[Reservation], Change], now: datetime
    ) -> Reservation:
        result = self._store.transition(reservation_id, decide, now_us=to_micros(now))
        if result is None:
            raise _not_found(reservation_id)
        self._invalidate(result)
        return result.as_of(now)

    def expire_due(self) -> int:
        """Record lapsed holds as EXPIRED (they stopped counting when they lapsed)."""
        now = self._clock()
        freed = self._store.expire_due(to_micros(now))
        self._changes.publish(Changes.of_pairs(freed))
        arrived = self._store.settle_arrived_incoming(to_micros(now), self._today_at(now))
        if arrived:
            self._changes.publish(Changes(pairs=frozenset(arrived), incoming=frozenset(arrived)))
        return len(freed)

    def _today_at(self, now: datetime) -> Callable[[str], str]:
        def today(location_id: str) -> str:
            location = self._directory.get(location_id)
            return (now.date() if location is None else local_today(location, now)).isoformat()

        return today

    def _invalidate(self, reservation: Reservation) -> None:
        self._changes.publish(
            Changes(
                pairs=frozenset(_pairs(reservation)),
                incoming=frozenset(_incoming_pairs(reservation)),
            )
        )


def _pairs(reservation: Reservation) -> Iterable[tuple[str, str]]:
    return [(line.sku, reservation.location_id) for line in reservation.lines]


def _incoming_pairs(reservation: Reservation) -> Iterable[tuple[str, str]]:
    """The pairs whose incoming held the reservation changes: its pre-order lines."""
    return [
        (line.sku, reservation.location_id) for line in reservation.lines if line.incoming_quantity
    ]


def _available(record: StockRecord | None, policy: StockPolicy, now: datetime) -> int:
    """What a hold could take now: 0 for a missing or stale record."""
    if record is None or is_stale(now - record.source_updated_at, policy.freshness_budget):
        return 0
    return available_to_sell(
        record.on_hand, reserved_at(record, now), policy.safety_stock_for(record.safety_stock)
    )


def _sees(visible: frozenset[str] | None, reservation: Reservation) -> bool:
    return visible is None or reservation.location_id in visible


def _not_found(reservation_id: str) -> NotFound:
    return NotFound("reservation", [reservation_id], reason="RESERVATION_NOT_FOUND")


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
