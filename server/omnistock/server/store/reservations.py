"""Reservations in the database: holds that never oversell.

A hold is taken with one conditional UPDATE per line,

    UPDATE stock SET reserved = reserved + q
    WHERE sku = ? AND location_id = ? AND <fresh> AND on_hand - reserved - safety >= q

inside one write transaction, so the check and the write are one step for the
database: on SQLite the transaction holds the write lock (BEGIN IMMEDIATE); on
PostgreSQL the UPDATE locks the row and re-checks its condition against the
newest committed version. Nothing is read into Python and written back. Lines are
taken in sku order, so two multi-line holds cannot deadlock.

Every change goes through the same raw DBAPI write transaction as the feeds.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from omnistock.server.domain.channels import ChannelMethod
from omnistock.server.domain.reservations import (
    NewReservation,
    Reservation,
    ReservationLine,
    ReservationMethod,
    ReservationState,
)
from omnistock.server.domain.timeutil import from_micros
from omnistock.server.store.database import raw_write_transaction
from omnistock.server.store.hold_placement import HoldPlacement, Placement
from omnistock.server.store.stock_upsert import Dialect
from sqlalchemy import Engine

_COLUMNS = (
    "id, location_id, method, state, idempotency_key, fingerprint, customer_reference,"
    " created_at_us, expires_at_us, committed_at_us, ended_at_us, holds_stock,"
    " channel_id, channel_method"
)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class HoldTerms:
    """When a hold is made and lapses, how fresh its records must be (source time at or
    after ``fresh_after_us``), and the location's default safety stock."""

    now_us: int
    expires_at_us: int
    fresh_after_us: int
    default_safety: int


@dataclass(frozen=True, slots=True)
class Stored:
    reservation: Reservation
    fingerprint: str


class ReservationStore(HoldPlacement):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        m = self._m = "%s" if self._postgres else "?"
        self._hold = (
            f"UPDATE stock SET reserved = reserved + {m}"
            f" WHERE sku = {m} AND location_id = {m} AND source_updated_at_us >= {m}"
            f" AND on_hand - reserved - COALESCE(safety_stock, {m}) >= {m}"
        )
        self._lock = " FOR UPDATE" if self._postgres else ""
        self._dialect = Dialect(self._postgres)

    def _marks(self, n: int) -> str:
        return ", ".join([self._m] * n)

    # -- reads

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        pooled = self._engine.raw_connection()
        cursor: Any = pooled.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            yield cursor
        finally:
            cursor.close()
            pooled.rollback()
            pooled.close()

    def get(self, reservation_id: str) -> Stored | None:
        with self._reading() as cursor:
            return self._load(cursor, reservation_id)

    def list_page(
        self,
        *,
        location_id: str,
        state: ReservationState | None,
        after_id: str,
        limit: int,
        now_us: int,
        locations: Collection[str] | None = None,
    ) -> list[Reservation]:
        """Reservations in id (creation) order; states as they stand at ``now_us``; at
        ``locations`` only, when given."""
        m = self._m
        where = [f"id > {m}"]
        params: list[Any] = [after_id]
        if location_id:
            where.append(f"location_id = {m}")
            params.append(location_id)
        if locations is not None:
            if not locations:
                return []
            where.append(f"location_id IN ({self._marks(len(locations))})")
            params.extend(sorted(locations))
        if state is ReservationState.ACTIVE:
            where.append(f"state = 'ACTIVE' AND expires_at_us > {m}")
            params.append(now_us)
        elif state is ReservationState.EXPIRED:
            where.append(f"(state = 'EXPIRED' OR (state = 'ACTIVE' AND expires_at_us <= {m}))")
            params.append(now_us)
        elif state is not None:
            where.append(f"state = {m}")
            params.append(state.value)
        sql = (
            f"SELECT {_COLUMNS} FROM reservations WHERE {' AND '.join(where)}"
            f" ORDER BY id LIMIT {int(limit)}"
        )
        with self._reading() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            lines = self._lines(cursor, [row[0] for row in rows])
            return [_reservation(row, lines[row[0]]) for row in rows]

    def _load(self, cursor: Any, reservation_id: str, *, lock: bool = False) -> Stored | None:
        cursor.execute(
            f"SELECT {_COLUMNS} FROM reservations WHERE id = {self._m}"
            + (self._lock if lock else ""),
            (reservation_id,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return Stored(_reservation(row, self._lines(cursor, [row[0]])[row[0]]), row[5])

    def _by_key(self, cursor: Any, owner: str, key: str) -> Stored | None:
        """The reservation ``owner`` (a principal) made with idempotency key ``key``."""
        m = self._m
        cursor.execute(
            f"SELECT id FROM reservations WHERE owner = {m} AND idempotency_key = {m}",
            (owner, key),
        )
        row = cursor.fetchone()
        return None if row is None else self._load(cursor, row[0])

    def _lines(self, cursor: Any, ids: Sequence[str]) -> defaultdict[str, list[ReservationLine]]:
        found: defaultdict[str, list[ReservationLine]] = defaultdict(list)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            cursor.execute(
                "SELECT reservation_id, sku, quantity, incoming_quantity FROM reservation_lines"
                f" WHERE reservation_id IN ({self._marks(len(chunk))}) ORDER BY reservation_id, sku",
                tuple(chunk),
            )
            for reservation_id, sku, quantity, incoming in cursor.fetchall():
                found[reservation_id].append(ReservationLine(sku, quantity, incoming))
        return found

    # -- writes

    def by_key(self, owner: str, key: str) -> Stored | None:
        """The reservation ``owner`` made with idempotency key ``key``, if any."""
        with self._reading() as cursor:
            return self._by_key(cursor, owner, key)

    def create(
        self,
        reservation_id: str,
        new: NewReservation,
        terms: HoldTerms,
        placements: Sequence[Placement] = (),
    ) -> tuple[Stored, bool]:
        """Hold every line or none, at the first of ``placements`` (a network hold's
        locations, best first) that can take them all; without placements, at
        ``new.location_id`` on ``terms``. Returns the reservation and whether it was made
        now (False: the idempotency key's earlier reservation). Raises ShortLines."""
        if not placements:
            placements = [Placement(new.location_id, terms.fresh_after_us, terms.default_safety)]
        try:
            return self._create(reservation_id, new, terms, placements)
        except (psycopg.errors.UniqueViolation, sqlite3.IntegrityError):
            # A concurrent request with the same idempotency key won the insert; ours
            # rolled back (its holds with it). Answer with the winner's reservation.
            if not new.idempotency_key:
                raise
            with raw_write_transaction(self._engine) as connection:
                cursor = connection.cursor()
                existing = self._by_key(cursor, new.owner, new.idempotency_key)
                cursor.close()
            if existing is None:
                raise
            return existing, False

    def _create(
        self,
        reservation_id: str,
        new: NewReservation,
        terms: HoldTerms,
        placements: Sequence[Placement],
    ) -> tuple[Stored, bool]:
        m = self._m
        now_us, expires_at_us = terms.now_us, terms.expires_at_us
        with raw_write_transaction(self._engine) as connection:
            cursor = connection.cursor()
            if new.idempotency_key:
                existing = self._by_key(cursor, new.owner, new.idempotency_key)
                if existing is not None:
                    return existing, False
            placed = self._place(cursor, placements, new.lines, now_us)
            lines = tuple(
                ReservationLine(line.sku, line.quantity, placed.from_incoming.get(line.sku, 0))
                for line in sorted(new.lines, key=lambda line: line.sku)
            )
            method = new.channel_method.name if new.channel_method is not None else None
            cursor.execute(
                f"INSERT INTO reservations ({_COLUMNS}, owner) VALUES ({self._marks(15)})",
                (
                    reservation_id,
                    placed.location_id,
                    new.method.value,
                    ReservationState.ACTIVE.value,
                    new.idempotency_key or None,
                    new.fingerprint,
                    new.customer_reference,
                    now_us,
                    expires_at_us,
                    None,
                    None,
                    True,
                    new.channel_id or None,
                    method,
                    new.owner,
                ),
            )
            cursor.executemany(
                "INSERT INTO reservation_lines (reservation_id, sku, location_id, quantity,"
                f" incoming_quantity, counted, expires_at_us) VALUES ({m}, {m}, {m}, {m}, {m},"
                f" TRUE, {m})",
                [
                    (
                        reservation_id,
                        line.sku,
                        placed.location_id,
                        line.quantity,
                        line.incoming_quantity,
                        expires_at_us,
                    )
                    for line in lines
                ],
            )
            cursor.close()
        reservation = Reservation(
            id=reservation_id,
            location_id=placed.location_id,
            lines=lines,
            method=new.method,
            state=ReservationState.ACTIVE,
            created_at=from_micros(now_us),
            expires_at=from_micros(expires_at_us),
            idempotency_key=new.idempotency_key,
            customer_reference=new.customer_reference,
            channel_id=new.channel_id,
            channel_method=new.channel_method,
        )
        return Stored(reservation, new.fingerprint), True

    def transition(
        self,
        reservation_id: str,
        decide: Any,
        *,
        now_us: int,
    ) -> Reservation | None:
        """Load the reservation (locked), let ``decide(reservation)`` name the change, and
        make it. ``decide`` returns one of: None (no change), ("commit",),
        ("release",), ("fulfil",), ("extend", expires_at_us); it raises to refuse.
        Returns the reservation as it stands afterwards, or None when there is none."""
        m = self._m
        with raw_write_transaction(self._engine) as connection:
            cursor = connection.cursor()
            stored = self._load(cursor, reservation_id, lock=True)
            if stored is None:
                return None
            change = decide(stored.reservation)
            if change is not None:
                action = change[0]
                if action == "commit":
                    cursor.execute(
                        f"UPDATE reservations SET state = 'COMMITTED', committed_at_us = {m}"
                        f" WHERE id = {m}",
                        (now_us, reservation_id),
                    )
                    cursor.execute(
                        "UPDATE reservation_lines SET expires_at_us = NULL"
                        f" WHERE reservation_id = {m}",
                        (reservation_id,),
                    )
                elif action in ("release", "fulfil"):
                    state = "RELEASED" if action == "release" else "COMMITTED"
                    cursor.execute(
                        f"UPDATE reservations SET state = {m}, ended_at_us = {m},"
                        f" holds_stock = FALSE WHERE id = {m}",
                        (state, now_us, reservation_id),
                    )
                    self._uncount(cursor, [reservation_id])
                elif action == "extend":
                    cursor.execute(
                        f"UPDATE reservations SET expires_at_us = {m} WHERE id = {m}",
                        (change[1], reservation_id),
                    )
                    cursor.execute(
                        f"UPDATE reservation_lines SET expires_at_us = {m}"
                        f" WHERE reservation_id = {m} AND counted",
                        (change[1], reservation_id),
                    )
                stored = self._load(cursor, reservation_id)
            cursor.close()
        return None if stored is None else stored.reservation

    def expire_due(self, now_us: int, *, limit: int = 1_000) -> list[tuple[str, str]]:
        """Record up to ``limit`` lapsed holds as EXPIRED; the (sku, location_id) pairs freed."""
        with raw_write_transaction(self._engine) as connection:
            cursor = connection.cursor()
            freed = self._expire(cursor, now_us, limit=limit)
            cursor.close()
        return freed

    def _expire(
        self, cursor: Any, now_us: int, *, location_id: str = "", limit: int | None = None
    ) -> list[tuple[str, str]]:
        m = self._m
        sql = f"SELECT id FROM reservations WHERE state = 'ACTIVE' AND expires_at_us <= {m}"
        params: tuple[Any, ...] = (now_us,)
        if location_id:
            sql += f" AND location_id = {m}"
            params += (location_id,)
        if limit is not None:
            sql += f" ORDER BY expires_at_us LIMIT {int(limit)}"
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        expired: list[str] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            # Only the holds this transaction moves are given back: a concurrent sweep
            # (another process) that got there first finds them no longer ACTIVE.
            cursor.execute(
                "UPDATE reservations SET state = 'EXPIRED', ended_at_us = expires_at_us,"
                f" holds_stock = FALSE WHERE id IN ({self._marks(len(chunk))})"
                " AND state = 'ACTIVE' RETURNING id",
                tuple(chunk),
            )
            expired += [row[0] for row in cursor.fetchall()]
        return self._uncount(cursor, expired)

    def _uncount(self, cursor: Any, reservation_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Take the counted lines of these reservations out of stock.reserved."""
        freed: list[tuple[str, str]] = []
        for start in range(0, len(reservation_ids), _CHUNK):
            chunk = tuple(reservation_ids[start : start + _CHUNK])
            marks = self._marks(len(chunk))
            cursor.execute(
                "SELECT sku, location_id, quantity - incoming_quantity FROM reservation_lines"
                f" WHERE reservation_id IN ({marks}) AND counted",
                chunk,
            )
            lines = cursor.fetchall()
            cursor.execute(
                "UPDATE reservation_lines SET counted = FALSE, expires_at_us = NULL"
                f" WHERE reservation_id IN ({marks}) AND counted",
                chunk,
            )
            self._release_units(cursor, [(q, sku, loc) for sku, loc, q in lines if q])
            freed += [(sku, loc) for sku, loc, _ in lines]
        return freed

    def _release_units(self, cursor: Any, rows: Iterable[tuple[int, str, str]]) -> None:
        rows = sorted(rows, key=lambda r: (r[1], r[2]))  # row lock order, as holds take them
        if rows:
            cursor.executemany(
                f"UPDATE stock SET reserved = reserved - {self._m}"
                f" WHERE sku = {self._m} AND location_id = {self._m}",
                rows,
            )


def _reservation(row: Sequence[Any], lines: list[ReservationLine]) -> Reservation:
    return Reservation(
        id=row[0],
        location_id=row[1],
        lines=tuple(lines),
        method=ReservationMethod(row[2]),
        state=ReservationState(row[3]),
        idempotency_key=row[4] or "",
        customer_reference=row[6],
        created_at=from_micros(row[7]),
        expires_at=from_micros(row[8]),
        committed_at=None if row[9] is None else from_micros(row[9]),
        ended_at=None if row[10] is None else from_micros(row[10]),
        holds_stock=bool(row[11]),
        channel_id=row[12] or "",
        channel_method=None if row[13] is None else ChannelMethod[row[13]],
    )
