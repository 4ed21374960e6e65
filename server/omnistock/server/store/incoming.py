"""Incoming supply: expected stock lines per (location, sku, line id), fed like stock.

Each line keeps the packed ordering key of the update that last set it
(domain.feed_order), so lines arrive in any order, late or repeated, and end the same:
an update sets a line when its key is greater, and a snapshot of a location's incoming
lines drops the lines it leaves out to 0 with the lowest key at its ``as_of``. The
tie-break is the line's content: the larger quantity, then the later date. Incoming is a
low-volume feed, so it runs through SQLAlchemy Core, a statement per line.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

from omnistock.server.domain.feed_order import pack_key, snapshot_zero_key
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import incoming_lines_table as t
from omnistock.server.store.tables import incoming_watermarks_table as w
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Connection, Engine, select, update


@dataclass(frozen=True, slots=True)
class IncomingUpdate:
    """One incoming line as a feed states it."""

    location_id: str
    sku: str
    line_id: str
    quantity: int
    expected: date
    source_updated_at_us: int
    source_sequence: int | None = None

    def packed_key(self) -> bytes:
        sequence = -1 if self.source_sequence is None else self.source_sequence
        return pack_key(
            self.source_updated_at_us, sequence, 2 * self.quantity + 1, self.expected.toordinal()
        )


@dataclass(frozen=True, slots=True)
class StoredIncoming:
    location_id: str
    sku: str
    line_id: str
    quantity: int
    expected: date


class IncomingStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._upsert = upsert_statement(
            engine,
            t,
            ["location_id", "sku", "line_id"],
            update=["quantity", "expected_date", "line_key", "received_at_us"],
            where=lambda excluded: excluded.line_key > t.c.line_key,
        )

    def apply(self, updates: Sequence[IncomingUpdate], *, now_us: int) -> list[bool]:
        """Apply line updates in one transaction; True for each that set its line."""
        applied = []
        with write_transaction(self._engine) as connection:
            marks = _watermarks(connection, {u.location_id for u in updates})
            for u in updates:
                key = u.packed_key()
                mark = marks.get(u.location_id)
                zero = None if mark is None else snapshot_zero_key(mark).packed()
                if zero is not None and key < zero:
                    # Older than the location's newest snapshot of its incoming: at most
                    # the 0 that snapshot implied.
                    self._write(connection, u, 0, zero, now_us)
                    applied.append(False)
                else:
                    applied.append(self._write(connection, u, u.quantity, key, now_us))
        return applied

    def apply_snapshot(
        self,
        location_id: str,
        as_of_us: int,
        lines: Sequence[tuple[str, str, int, date]],
        *,
        now_us: int,
    ) -> tuple[int, int]:
        """A location's whole incoming as of a time, (sku, line id, quantity, expected date)
        lines, all or nothing: lines it leaves out drop to 0 unless newer. Returns (lines
        set, lines dropped)."""
        updates = [
            IncomingUpdate(location_id, sku, line_id, quantity, expected, as_of_us)
            for sku, line_id, quantity, expected in lines
        ]
        with write_transaction(self._engine) as connection:
            mark = _watermarks(connection, {location_id}).get(location_id)
            late = mark is not None and as_of_us < mark
            zero_late = None if mark is None else snapshot_zero_key(mark).packed()
            applied = 0
            for u in updates:
                if late:
                    assert zero_late is not None
                    self._write(connection, u, 0, zero_late, now_us)
                else:
                    applied += self._write(connection, u, u.quantity, u.packed_key(), now_us)
            dropped = 0
            if not late:
                zero = snapshot_zero_key(as_of_us).packed()
                dropped = connection.execute(
                    update(t)
                    .where(t.c.location_id == location_id, t.c.line_key < zero)
                    .values(quantity=0, line_key=zero, received_at_us=now_us)
                ).rowcount
                connection.execute(
                    upsert_statement(
                        self._engine,
                        w,
                        ["location_id"],
                        update=["as_of_us"],
                        where=lambda excluded: excluded.as_of_us > w.c.as_of_us,
                    ),
                    {"location_id": location_id, "as_of_us": as_of_us},
                )
        return applied, dropped

    def _write(
        self, connection: Connection, u: IncomingUpdate, quantity: int, key: bytes, now_us: int
    ) -> bool:
        row = {
            "location_id": u.location_id,
            "sku": u.sku,
            "line_id": u.line_id,
            "quantity": quantity,
            "expected_date": u.expected.isoformat(),
            "line_key": key,
            "received_at_us": now_us,
        }
        return bool(connection.execute(self._upsert, row).rowcount)

    def lines_for(
        self, sku: str, location_ids: Collection[str] | None = None
    ) -> list[StoredIncoming]:
        """The open lines (quantity above 0) of a sku, at some locations or all."""
        stmt = select(t.c.location_id, t.c.sku, t.c.line_id, t.c.quantity, t.c.expected_date)
        stmt = stmt.where(t.c.sku == sku, t.c.quantity > 0)
        if location_ids is not None:
            stmt = stmt.where(t.c.location_id.in_(sorted(location_ids)))
        with self._engine.connect() as connection:
            return [
                StoredIncoming(loc, s, line, quantity, date.fromisoformat(expected))
                for loc, s, line, quantity, expected in connection.execute(
                    stmt.order_by(t.c.location_id, t.c.line_id)
                )
            ]


def _watermarks(connection: Connection, location_ids: set[str]) -> dict[str, int]:
    rows = connection.execute(
        select(w.c.location_id, w.c.as_of_us).where(w.c.location_id.in_(sorted(location_ids)))
    )
    return {location_id: as_of for location_id, as_of in rows}
