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
- with read replicas (store/replicas.py), each read goes where the replica set says (a
  replica in rotation that has replayed what the read must see, else the primary), and
  a read a replica fails is made again on the primary;
- a sku read whole again (a search's records, every read-cache TTL) builds records
  only for the rows that changed since its last read and hands back the same objects
  for the rest: building thousands of records each second held the GIL long enough
  to stall the event loop (about 7 ms for a sku at 2,400 stores).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from omnistock.server.domain.stock import StockRecord
from omnistock.server.domain.timeutil import from_micros
from omnistock.server.store.replicas import REPLAY_POSITION, Replica, ReplicaSet
from omnistock.server.store.tables import stock_table as t
from sqlalchemy import Engine, Select, select

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
T = TypeVar("T")


class StockReader:
    """Point reads of stock records; one instance per engine, safe across threads."""

    def __init__(
        self,
        engine: Engine,
        *,
        replicas: ReplicaSet | None = None,
        remembered_rows: int = MAX_REMEMBERED_ROWS,
    ) -> None:
        self._engine = engine
        self._replicas = replicas
        # sku -> location id -> (row, record as a plain tuple) of the sku's last whole
        # read. Plain tuples, which the garbage collector stops tracking (see
        # readmodel.stock.RecordMap). A plain dict: each sku's map is replaced whole,
        # never changed in place; the skus read longest ago are forgotten first.
        self._last_read: dict[str, dict[str, tuple[Row, tuple[Any, ...]]]] = {}
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

    def _cursor(self, engine: Engine) -> Any:
        """A cursor on this thread's held connection to ``engine``."""
        connections: dict[int, Any] | None = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        connection = connections.get(id(engine))
        if connection is None:
            connection = engine.raw_connection()
            driver: Any = connection.driver_connection
            if self._postgres:
                driver.autocommit = True
            # SQLite connections are already in autocommit (isolation_level None).
            connections[id(engine)] = connection
            with self._held_lock:
                self._held.append(connection)
        return connection.driver_connection.cursor()  # type: ignore[union-attr]

    def _drop(self, engine: Engine) -> None:
        """Forget this thread's connection to ``engine`` (it failed)."""
        connection = self._local.connections.pop(id(engine), None)
        if connection is not None:
            with self._held_lock:
                self._held = [c for c in self._held if c is not connection]
            with contextlib.suppress(Exception):
                connection.invalidate()

    def _read(self, read: Callable[[Any], T], *, primary: bool = False) -> T:
        """``read(cursor)`` on the database the replica set picks (the primary when there
        are no replicas, or ``primary``)."""
        replica, required = (None, 0) if primary or self._replicas is None else self._pick()
        if replica is not None:
            try:
                cursor = self._cursor(replica.engine)
                try:
                    if required and not self._has_replayed(cursor, replica, required):
                        replica = None  # behind what the read must see: the primary's
                    else:
                        replica.reads += 1
                        return read(cursor)
                finally:
                    cursor.close()
            except psycopg.Error:  # unreachable, a recovery conflict, DDL not replayed yet
                self._drop(replica.engine)  # type: ignore[union-attr]
                assert self._replicas is not None
                self._replicas.failed(replica)  # type: ignore[arg-type]
        if self._replicas is not None:
            self._replicas.primary_reads += 1
        cursor = self._cursor(self._engine)
        try:
            return read(cursor)
        finally:
            cursor.close()

    def _pick(self) -> tuple[Replica | None, int]:
        assert self._replicas is not None
        return self._replicas.choose()

    @staticmethod
    def _has_replayed(cursor: Any, replica: Replica, required: int) -> bool:
        cursor.execute(REPLAY_POSITION)
        recovering, replayed = cursor.fetchone()
        if not recovering or replayed is None:
            return False
        replica.saw_replayed(int(replayed))
        return int(replayed) >= required

    def records_for_sku(
        self, sku: str, location_ids: Sequence[str] | None, *, primary: bool = False
    ) -> list[StockRecord]:
        def read(cursor: Any) -> list[StockRecord]:
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

        return self._read(read, primary=primary)

    def _whole_sku(self, sku: str, rows: list[Row]) -> list[StockRecord]:
        """Records for every row of one sku: the record of the sku's last read where the
        row is the same and holds nothing (holds are read apart), a new one elsewhere."""
        last = self._last_read.get(sku, {})
        kept: dict[str, tuple[Row, tuple[Any, ...]]] = {}
        records = []
        for row in rows:
            seen = last.get(row[0])
            if seen is not None and seen[0] == row:
                record = StockRecord._make(seen[1])
            else:
                record = record_from_row(row)
            if not row[3]:  # reserved: a record with holds gets them attached afresh
                kept[row[0]] = (row, tuple(record))
            records.append(record)
        self._remember(sku, kept)
        return records

    def _remember(self, sku: str, kept: dict[str, tuple[Row, tuple[Any, ...]]]) -> None:
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

    def records_for_pairs(
        self, pairs: Sequence[tuple[str, str]], *, primary: bool = False
    ) -> list[StockRecord]:
        def read(cursor: Any) -> list[StockRecord]:
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

        return self._read(read, primary=primary)

    def rows(self, statement: Select[Any], *, primary: bool = False) -> list[Row]:
        """``statement``'s rows, read where the replica set picks (or the primary)."""
        compiled = statement.compile(
            dialect=self._engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = compiled.construct_params()
        order = compiled.positiontup
        values: Any = params if order is None else tuple(params[name] for name in order)
        sql = str(compiled)

        def read(cursor: Any) -> list[Row]:
            cursor.execute(sql, values)
            return [tuple(row) for row in cursor.fetchall()]

        return self._read(read, primary=primary)

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
            r._replace(holds=tuple(holds[(r.sku, r.location_id)]))
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
