"""The read fast path: stock point reads on a per-thread DBAPI connection.

Measured on the benchmark data set, a primary-key read through an SQLAlchemy
Connection costs about 90 us (pool checkout, BEGIN, ROLLBACK, result
wrapping), while the same read on a held DBAPI cursor costs about 4 us. Reads
are the hot path, so they take the short road:

- each database worker thread holds one DBAPI connection from the engine's pool,
  in autocommit mode, so every SELECT sees the newest committed data;
- the SQL text is compiled once by SQLAlchemy for the engine's dialect;
- SQLite answers a batch of pairs with point lookups (it scans the whole table
  for a row-value IN list), PostgreSQL with one join against unnest() arrays;
- a sku read whole again (a search's records, every read-cache TTL) builds records
  only for the rows that changed since its last read and hands back the same objects
  for the rest: building thousands of records each second held the GIL long enough
  to stall the event loop (about 7 ms for a sku at 2,400 stores).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from omnistock.server.domain.stock import StockRecord
from omnistock.server.domain.timeutil import from_micros
from omnistock.server.store.tables import stock_table as t
from sqlalchemy import Engine, select

_COLUMNS = (
    t.c.location_id,
    t.c.sku,
    t.c.on_hand,
    t.c.reserved,
    t.c.safety_stock,
    t.c.source_updated_at_us,
    t.c.source_sequence,
)


def record_from_row(row: Sequence[Any]) -> StockRecord:
    return StockRecord(
        location_id=row[0],
        sku=row[1],
        on_hand=row[2],
        reserved=row[3],
        safety_stock=row[4],
        source_updated_at=from_micros(row[5]),
        source_sequence=row[6],
    )


# The most rows of whole-sku reads kept to be matched by the next read of the sku (about
# 200 bytes each, beside the records themselves): enough for the skus searches keep hot.
MAX_REMEMBERED_ROWS = 50_000

Row = tuple[Any, ...]


class StockReader:
    """Point reads of stock records; one instance per engine, safe across threads."""

    def __init__(self, engine: Engine, *, remembered_rows: int = MAX_REMEMBERED_ROWS) -> None:
        self._engine = engine
        # sku -> location id -> (row, record) of the sku's last whole read. A plain dict:
        # each sku's map is replaced whole, never changed in place; the skus read longest
        # ago are forgotten first.
        self._last_read: dict[str, dict[str, tuple[Row, StockRecord]]] = {}
        self._last_read_rows = 0
        self._remembered_rows = remembered_rows
        self._last_read_lock = threading.Lock()
        self._local = threading.local()
        self._held: list[Any] = []
        self._held_lock = threading.Lock()
        self._postgres = engine.dialect.name == "postgresql"
        mark = "%s" if self._postgres else "?"
        # The column list comes from the table model, compiled once for the dialect.
        base = " ".join(str(select(*_COLUMNS).compile(dialect=engine.dialect)).split())
        self._select = base
        self._by_sku = f"{base} WHERE stock.sku = {mark}"
        self._by_pair = f"{base} WHERE stock.sku = {mark} AND stock.location_id = {mark}"
        self._by_sku_at_any = f"{base} WHERE stock.sku = %s AND stock.location_id = ANY(%s)"
        self._by_pairs_pg = (
            f"{base} JOIN unnest(%s::text[], %s::text[]) AS p(p_sku, p_location_id)"
            " ON stock.sku = p_sku AND stock.location_id = p_location_id"
        )
        self._sqlite_in: dict[int, str] = {}
        self._holds_of_sku = (
            # The stock part of each hold: a pre-order's incoming part is not in reserved.
            "SELECT location_id, quantity - incoming_quantity, expires_at_us FROM reservation_lines"
            f" WHERE sku = {mark} AND counted AND expires_at_us IS NOT NULL"
        )

    def _cursor(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._engine.raw_connection()
            driver: Any = connection.driver_connection
            if self._postgres:
                driver.autocommit = True
            # SQLite connections are already in autocommit (isolation_level None).
            self._local.connection = connection
            with self._held_lock:
                self._held.append(connection)
        return connection.driver_connection.cursor()  # type: ignore[union-attr]

    def records_for_sku(self, sku: str, location_ids: Sequence[str] | None) -> list[StockRecord]:
        cursor = self._cursor()
        try:
            if location_ids is None:
                cursor.execute(self._by_sku, (sku,))
                return self._with_holds(cursor, self._whole_sku(sku, cursor.fetchall()))
            if len(location_ids) == 1:
                cursor.execute(self._by_pair, (sku, location_ids[0]))
            elif self._postgres:
                cursor.execute(self._by_sku_at_any, (sku, list(location_ids)))
            else:
                cursor.execute(self._sqlite_sku_at(len(location_ids)), (sku, *location_ids))
            return self._with_holds(cursor, [record_from_row(row) for row in cursor.fetchall()])
        finally:
            cursor.close()

    def _whole_sku(self, sku: str, rows: list[Row]) -> list[StockRecord]:
        """Records for every row of one sku: the record of the sku's last read where the
        row is the same and holds nothing (holds are read apart), a new one elsewhere."""
        last = self._last_read.get(sku, {})
        kept: dict[str, tuple[Row, StockRecord]] = {}
        records = []
        for row in rows:
            seen = last.get(row[0])
            record = seen[1] if seen is not None and seen[0] == row else record_from_row(row)
            if not row[3]:  # reserved: a record with holds gets them attached afresh
                kept[row[0]] = (row, record)
            records.append(record)
        self._remember(sku, kept)
        return records

    def _remember(self, sku: str, kept: dict[str, tuple[Row, StockRecord]]) -> None:
        with self._last_read_lock:
            replaced = self._last_read.pop(sku, None)
            if replaced is not None:
                self._last_read_rows -= len(replaced)
            if not kept or len(kept) > self._remembered_rows:
                return  # nothing to match (an unknown sku, every row held), or too much
            while self._last_read and self._last_read_rows + len(kept) > self._remembered_rows:
                self._last_read_rows -= len(self._last_read.pop(next(iter(self._last_read))))
            self._last_read[sku] = kept
            self._last_read_rows += len(kept)

    def records_for_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[StockRecord]:
        cursor = self._cursor()
        try:
            if self._postgres:
                cursor.execute(self._by_pairs_pg, ([p[0] for p in pairs], [p[1] for p in pairs]))
                records = [record_from_row(row) for row in cursor.fetchall()]
            else:
                records = []
                for pair in pairs:
                    cursor.execute(self._by_pair, pair)
                    row = cursor.fetchone()
                    if row is not None:
                        records.append(record_from_row(row))
            return self._with_holds(cursor, records)
        finally:
            cursor.close()

    def _with_holds(self, cursor: Any, records: list[StockRecord]) -> list[StockRecord]:
        """Attach the active holds of records that have any (reserved > 0), so a hold that
        lapses stops counting at once (domain.stock.reserved_at). One query per sku held."""
        held = [r for r in records if r.reserved > 0]
        if not held:
            return records
        holds: dict[tuple[str, str], list[tuple[int, datetime]]] = {}
        for sku in {r.sku for r in held}:
            cursor.execute(self._holds_of_sku, (sku,))
            for location_id, quantity, expires_us in cursor.fetchall():
                holds.setdefault((sku, location_id), []).append((quantity, from_micros(expires_us)))
        return [
            replace(r, holds=tuple(holds[(r.sku, r.location_id)]))
            if (r.sku, r.location_id) in holds
            else r
            for r in records
        ]

    def _sqlite_sku_at(self, count: int) -> str:
        sql = self._sqlite_in.get(count)
        if sql is None:
            marks = ", ".join("?" * count)
            sql = self._sqlite_in[count] = f"{self._by_sku} AND stock.location_id IN ({marks})"
        return sql

    def close(self) -> None:
        """Return every held connection (at shutdown)."""
        with self._held_lock:
            held, self._held = self._held, []
        for connection in held:
            # At shutdown a connection may already be gone; nothing to recover.
            with contextlib.suppress(Exception):
                connection.close()
