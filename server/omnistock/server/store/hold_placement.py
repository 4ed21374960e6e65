"""Placing a hold inside its write transaction: the locations a hold may go to are tried
best first, each under a savepoint, and the first that can take every line keeps it.

A line's stock part is one conditional UPDATE per record,

    UPDATE stock SET reserved = reserved + q
    WHERE sku = ? AND location_id = ? AND <fresh> AND on_hand - reserved - safety >= q + protection

so the check and the write are one step for the database (a network hold leaves the
channel's protection; a hold made at a location has none). A line's incoming part (a
pre-order) is checked against the incoming still counting at the location less the
incoming already held there, after the location's advisory lock (PostgreSQL; SQLite's
write transaction already holds the database's write lock), so two pre-orders cannot
both take the last incoming unit. Rows are taken in (sku, location) order, the order
every other writer of stock.reserved uses, so holds and moves cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omnistock.server.domain.reservations import Reservation, ReservationLine
from omnistock.server.store.database import raw_write_transaction
from omnistock.server.store.stock_upsert import Dialect
from sqlalchemy import Engine


@dataclass(frozen=True, slots=True)
class Placement:
    """One location a hold may be placed at, with what its records must meet: a source
    time at or after ``fresh_after_us``, the location's default safety stock, and, for a
    network hold, the channel's protection there (the stock part must leave it), the
    part of each line taken from incoming, and the location's date (``today``, ISO):
    incoming due on or after it still counts."""

    location_id: str
    fresh_after_us: int
    default_safety: int
    protection: int = 0
    from_incoming: Mapping[str, int] = field(default_factory=dict)
    today: str = ""


class ShortLines(Exception):
    """Some lines could not be held; the transaction was rolled back."""

    def __init__(self, lines: list[ReservationLine]) -> None:
        super().__init__(", ".join(line.sku for line in lines))
        self.lines = lines


class HoldPlacement:
    """The placement half of ReservationStore (it provides the SQL and helpers)."""

    _engine: Engine
    _m: str
    _hold: str
    _dialect: Dialect

    def _expire(self, cursor: Any, now_us: int, *, location_id: str = "") -> Any:
        raise NotImplementedError

    def _release_units(self, cursor: Any, rows: Any) -> None:
        raise NotImplementedError

    def _load(self, cursor: Any, reservation_id: str, *, lock: bool = False) -> Any:
        raise NotImplementedError

    def move(
        self,
        reservation_id: str,
        placements: Sequence[Placement],
        decide: Callable[[Reservation], None],
        *,
        now_us: int,
    ) -> tuple[Reservation, Reservation] | None:
        """Move an active hold to the first of ``placements`` that can take every line, in
        one transaction: the new location's holds are taken and the old one's given back,
        or nothing changes (ShortLines). ``decide(reservation)`` raises to refuse (it sees
        the reservation locked). Returns (before, after), or None when there is none."""
        m = self._m
        with raw_write_transaction(self._engine) as connection:
            cursor = connection.cursor()
            stored = self._load(cursor, reservation_id, lock=True)
            if stored is None:
                return None
            before: Reservation = stored.reservation
            decide(before)
            giving_back = [
                (line.quantity - line.incoming_quantity, line.sku, before.location_id)
                for line in before.lines
                if line.quantity > line.incoming_quantity
            ]
            others = [p for p in placements if p.location_id != before.location_id]
            placed = self._place(cursor, others, before.lines, now_us, giving_back=giving_back)
            cursor.executemany(
                f"UPDATE reservation_lines SET location_id = {m}, incoming_quantity = {m}"
                f" WHERE reservation_id = {m} AND sku = {m}",
                [
                    (placed.location_id, placed.from_incoming.get(line.sku, 0), before.id, line.sku)
                    for line in before.lines
                ],
            )
            cursor.execute(
                f"UPDATE reservations SET location_id = {m} WHERE id = {m}",
                (placed.location_id, before.id),
            )
            after = self._load(cursor, reservation_id).reservation
            cursor.close()
        return before, after

    def _place(
        self,
        cursor: Any,
        placements: Sequence[Placement],
        lines: Sequence[ReservationLine],
        now_us: int,
        *,
        giving_back: Sequence[tuple[int, str, str]] = (),
    ) -> Placement:
        """Take every line at the first placement that has them all; raise ShortLines
        (the last one's short lines) when none has. Each try runs under a savepoint, so a
        short one leaves nothing behind. ``giving_back``: (units, sku, location) a move
        returns, released in the same (sku, location) order as the takes."""
        # Incoming held is counted, not a row: queue behind other holds taking incoming at
        # these locations (PostgreSQL; SQLite's write lock already serialises writers).
        self._dialect.lock_locations(cursor, [p.location_id for p in placements if p.from_incoming])
        short: list[ReservationLine] = []
        for placement in placements:
            # Lapsed holds at this location stop counting before new ones are weighed.
            self._expire(cursor, now_us, location_id=placement.location_id)
            cursor.execute("SAVEPOINT place")
            short = self._take(cursor, placement, lines, now_us, giving_back)
            if not short:
                cursor.execute("RELEASE SAVEPOINT place")
                return placement
            cursor.execute("ROLLBACK TO SAVEPOINT place")
            cursor.execute("RELEASE SAVEPOINT place")
        raise ShortLines(short)

    def _take(
        self,
        cursor: Any,
        p: Placement,
        lines: Sequence[ReservationLine],
        now_us: int,
        giving_back: Sequence[tuple[int, str, str]],
    ) -> list[ReservationLine]:
        """Hold each line at one placement: its stock part with one conditional UPDATE
        that leaves the protection, its incoming part if that much incoming is free."""
        wanted = {line.sku: line for line in lines}
        steps: list[tuple[str, str, int]] = [(line.sku, p.location_id, 0) for line in lines]
        steps += [(sku, location_id, units) for units, sku, location_id in giving_back]
        short = []
        for sku, location_id, units in sorted(steps, key=lambda s: (s[0], s[1])):
            if units:
                self._release_units(cursor, [(units, sku, location_id)])
                continue
            line = wanted[sku]
            incoming = p.from_incoming.get(sku, 0)
            stock_part = line.quantity - incoming
            if stock_part > 0:
                cursor.execute(
                    self._hold,
                    (
                        stock_part,
                        sku,
                        p.location_id,
                        p.fresh_after_us,
                        p.default_safety,
                        stock_part + p.protection,
                    ),
                )
                if cursor.rowcount != 1:
                    short.append(line)
                    continue
            if incoming > 0 and not self._incoming_free(cursor, sku, p, incoming, now_us):
                short.append(line)
        return short

    def _incoming_free(self, cursor: Any, sku: str, p: Placement, units: int, now_us: int) -> bool:
        """Whether ``units`` of the incoming still counting at the placement are not held."""
        m = self._m
        cursor.execute(
            f"SELECT COALESCE(SUM(quantity), 0) FROM incoming_lines WHERE location_id = {m}"
            f" AND sku = {m} AND quantity > 0 AND expected_date >= {m}",
            (p.location_id, sku, p.today),
        )
        counting = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT COALESCE(SUM(incoming_quantity), 0) FROM reservation_lines"
            f" WHERE sku = {m} AND location_id = {m} AND counted AND incoming_quantity > 0"
            f" AND (expires_at_us IS NULL OR expires_at_us > {m})",
            (sku, p.location_id, now_us),
        )
        return int(cursor.fetchone()[0]) + units <= counting

    def settle_arrived_incoming(
        self, now_us: int, today_at: Callable[[str], str], *, limit: int = 1_000
    ) -> list[tuple[str, str]]:
        """Where holds take more incoming than still counts at a location (its date has
        passed: the stock feed carries what arrived; or the feed cut the line), move the
        excess of those holds, oldest first, from incoming to a hold of the location's
        stock (stock.reserved), where the location has a record of the sku. Up to
        ``limit`` (sku, location) pairs a call; ``today_at(location_id)`` is the
        location's date (ISO). Returns the pairs changed."""
        m = self._m
        live = (
            f"counted AND incoming_quantity > 0 AND (expires_at_us IS NULL OR expires_at_us > {m})"
        )
        changed: list[tuple[str, str]] = []
        with raw_write_transaction(self._engine) as connection:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT sku, location_id, SUM(incoming_quantity) FROM reservation_lines"
                f" WHERE {live} GROUP BY sku, location_id ORDER BY sku, location_id"
                f" LIMIT {int(limit)}",
                (now_us,),
            )
            held = cursor.fetchall()
            self._dialect.lock_locations(cursor, [location_id for _, location_id, _ in held])
            for sku, location_id, units in held:
                cursor.execute(
                    f"SELECT COALESCE(SUM(quantity), 0) FROM incoming_lines WHERE location_id = {m}"
                    f" AND sku = {m} AND quantity > 0 AND expected_date >= {m}",
                    (location_id, sku, today_at(location_id)),
                )
                excess = int(units) - int(cursor.fetchone()[0])
                cursor.execute(
                    f"SELECT 1 FROM stock WHERE sku = {m} AND location_id = {m}", (sku, location_id)
                )
                if excess <= 0 or cursor.fetchone() is None:
                    continue
                cursor.execute(
                    "SELECT reservation_id, incoming_quantity FROM reservation_lines"
                    f" WHERE sku = {m} AND location_id = {m} AND {live} ORDER BY reservation_id",
                    (sku, location_id, now_us),
                )
                moves = []
                for reservation_id, incoming in cursor.fetchall():
                    take = min(int(incoming), excess)
                    moves.append((take, reservation_id, sku))
                    excess -= take
                    if excess == 0:
                        break
                cursor.executemany(
                    f"UPDATE reservation_lines SET incoming_quantity = incoming_quantity - {m}"
                    f" WHERE reservation_id = {m} AND sku = {m}",
                    moves,
                )
                cursor.execute(
                    f"UPDATE stock SET reserved = reserved + {m} WHERE sku = {m} AND location_id = {m}",
                    (sum(take for take, _, _ in moves), sku, location_id),
                )
                changed.append((sku, location_id))
            cursor.close()
        return changed
