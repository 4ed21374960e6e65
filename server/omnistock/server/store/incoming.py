"""Incoming supply: expected stock lines per (location, sku, line id), fed like stock.

Each line keeps the packed ordering key of the update that last set it
(domain.feed_order), so lines arrive in any order, late or repeated, and end the same:
an update sets a line when its key is greater, and a snapshot of a location's incoming
lines drops the lines it leaves out to 0 with the lowest key at its ``as_of``. The
tie-break is the line's content: the larger quantity, then the later date. Incoming is a
low-volume feed, so it runs through SQLAlchemy Core, a statement per line.

Reads are bounded: a page of a list, and the open supply of at most MAX_SUPPLY_SKUS skus
at once with at most MAX_SUPPLY_ROWS per sku, through ``ix_incoming_lines_sku``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from omnistock.server.domain.feed_order import IncomingUpdate, snapshot_zero_key
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import incoming_lines_table as t
from omnistock.server.store.tables import incoming_watermarks_table as w
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Connection, Engine, func, select, tuple_, update

# The most skus one open_supply call reads, and (location, date) rows it returns per sku.
MAX_SUPPLY_SKUS = 1_000
MAX_SUPPLY_ROWS = 1_000
# The most lines one lines_for call returns.
MAX_LINES_READ = 10_000


@dataclass(frozen=True, slots=True)
class StoredIncoming:
    location_id: str
    sku: str
    line_id: str
    quantity: int
    expected: date


@dataclass(frozen=True, slots=True)
class OpenSupply:
    """A sku's open incoming at one location due on one date: its lines added up."""

    location_id: str
    quantity: int
    expected: date


@dataclass(frozen=True, slots=True)
class IncomingSnapshotResult:
    applied: int  # lines the snapshot set
    zeroed_skus: frozenset[str]  # skus of the open lines it left out, now at 0
    zeroed: int  # how many such lines


class IncomingStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._upsert = upsert_statement(
            engine,
            t,
            ["location_id", "sku", "line_id"],
            update=["quantity", "expected_date", "line_key", "received_at_us"],
            where=lambda excluded: excluded.line_key > t.c.line_key,
        ).returning(t.c.line_key)

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
    ) -> IncomingSnapshotResult:
        """A location's whole incoming as of a time, (sku, line id, quantity, expected date)
        lines, all or nothing: lines it leaves out drop to 0 unless newer."""
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
            zeroed: list[str] = []
            if not late:
                zero = snapshot_zero_key(as_of_us).packed()
                left_out = update(t).where(t.c.location_id == location_id, t.c.line_key < zero)
                stamp = {"quantity": 0, "line_key": zero, "received_at_us": now_us}
                # The open lines it drops (named, for the change bus), then the closed ones
                # (their key only).
                zeroed = list(
                    connection.execute(
                        left_out.where(t.c.quantity > 0).values(**stamp).returning(t.c.sku)
                    ).scalars()
                )
                connection.execute(left_out.values(**stamp))
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
        return IncomingSnapshotResult(applied, frozenset(zeroed), len(zeroed))

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
        # Whether it wrote, from RETURNING: psycopg reports no rowcount for an upsert.
        return connection.execute(self._upsert, row).first() is not None

    def lines_for(
        self, sku: str, location_ids: Collection[str] | None = None
    ) -> list[StoredIncoming]:
        """The open lines (quantity above 0) of a sku, at some locations or all; at most
        MAX_LINES_READ of them, by location and line id."""
        stmt = select(t.c.location_id, t.c.sku, t.c.line_id, t.c.quantity, t.c.expected_date)
        stmt = stmt.where(t.c.sku == sku, t.c.quantity > 0)
        if location_ids is not None:
            stmt = stmt.where(t.c.location_id.in_(sorted(location_ids)))
        stmt = stmt.order_by(t.c.location_id, t.c.line_id).limit(MAX_LINES_READ)
        with self._engine.connect() as connection:
            return [_stored(row) for row in connection.execute(stmt)]

    def open_supply(self, skus: Collection[str], *, since: date) -> dict[str, list[OpenSupply]]:
        """Each sku's open incoming (quantity above 0) due on ``since`` or later, its lines
        added up per (location, expected date), earliest date first: at most MAX_SUPPLY_ROWS
        a sku (past that the latest dates are left out). Every sku asked is a key. ``since``
        is for leaving out lines long past: the earliest date any location can have today
        (the UTC date less a day) keeps every line that may still count.

        One query over ``ix_incoming_lines_sku``; ValueError past MAX_SUPPLY_SKUS skus.
        """
        wanted = sorted(set(skus))
        if len(wanted) > MAX_SUPPLY_SKUS:
            raise ValueError(f"at most {MAX_SUPPLY_SKUS:,} skus per read, got {len(wanted):,}")
        found: dict[str, list[OpenSupply]] = {sku: [] for sku in wanted}
        if not wanted:
            return found
        stmt = open_supply_statement(wanted, since)
        with self._engine.connect() as connection:
            for sku, location_id, quantity, expected in connection.execute(stmt):
                found[sku].append(
                    OpenSupply(location_id, int(quantity), date.fromisoformat(expected))
                )
        return found

    def page(
        self,
        *,
        sku: str = "",
        location_id: str = "",
        after: tuple[str, str, str] | None = None,
        limit: int,
        locations: Collection[str] | None = None,
    ) -> list[StoredIncoming]:
        """Open lines of a sku and/or a location, by (location, sku, line id), after
        ``after``; at ``locations`` only, when given (a caller's scope)."""
        if locations is not None and not locations:
            return []
        stmt = select(t.c.location_id, t.c.sku, t.c.line_id, t.c.quantity, t.c.expected_date)
        where: list[Any] = [t.c.quantity > 0]
        if sku:
            where.append(t.c.sku == sku)
        if location_id:
            where.append(t.c.location_id == location_id)
        if locations is not None:
            where.append(t.c.location_id.in_(sorted(locations)))
        if after is not None:
            where.append(tuple_(t.c.location_id, t.c.sku, t.c.line_id) > tuple_(*after))
        stmt = stmt.where(*where).order_by(t.c.location_id, t.c.sku, t.c.line_id).limit(limit)
        with self._engine.connect() as connection:
            return [_stored(row) for row in connection.execute(stmt)]


def open_supply_statement(skus: list[str], since: date) -> Any:
    """open_supply's query: the skus' open lines from ``since``, added up per (sku,
    location, date), the first MAX_SUPPLY_ROWS of each sku by date."""
    grouped = (
        select(
            t.c.sku,
            t.c.location_id,
            t.c.expected_date,
            func.sum(t.c.quantity).label("quantity"),
        )
        .where(t.c.sku.in_(skus), t.c.quantity > 0, t.c.expected_date >= since.isoformat())
        .group_by(t.c.sku, t.c.location_id, t.c.expected_date)
        .subquery()
    )
    rank = func.row_number().over(
        partition_by=grouped.c.sku, order_by=(grouped.c.expected_date, grouped.c.location_id)
    )
    ranked = select(grouped, rank.label("n")).subquery()
    return (
        select(ranked.c.sku, ranked.c.location_id, ranked.c.quantity, ranked.c.expected_date)
        .where(ranked.c.n <= MAX_SUPPLY_ROWS)
        .order_by(ranked.c.sku, ranked.c.n)
    )


def _stored(row: Any) -> StoredIncoming:
    location_id, sku, line_id, quantity, expected = row
    return StoredIncoming(location_id, sku, line_id, quantity, date.fromisoformat(expected))


def _watermarks(connection: Connection, location_ids: set[str]) -> dict[str, int]:
    rows = connection.execute(
        select(w.c.location_id, w.c.as_of_us).where(w.c.location_id.in_(sorted(location_ids)))
    )
    return {location_id: as_of for location_id, as_of in rows}
