"""Snapshots: one location's whole stock as of a time, applied all or nothing.

Each record is an update keyed at as_of (domain.feed_order); the records a snapshot
leaves out drop to zero with the lowest key at as_of. A snapshot runs in one
transaction that stays open while the records stream in, so a crash or a dropped
stream leaves the previous state whole. On SQLite that transaction holds the
database's write lock for the length of the import; on PostgreSQL the records go to a
temporary table through COPY and are merged at the end, under the location's lock.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from omnistock.server.domain.feed_order import pack_key, snapshot_zero_key
from omnistock.server.store.packed_keys import pack_key_sql
from omnistock.server.store.settlement import settle_committed_holds
from omnistock.server.store.stock_upsert import upsert

if TYPE_CHECKING:
    from omnistock.server.store.feeds import FeedWriter


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    received: int
    applied: int
    stale: int
    zeroed: int


def begin_snapshot(
    writer: FeedWriter, location_id: str, as_of_us: int, now_us: int
) -> SnapshotImport:
    """Open a snapshot import of one location, the dialect's way."""
    if writer._dialect.postgres:
        return _PostgresSnapshot(writer, location_id, as_of_us, now_us)
    return _SqliteSnapshot(writer, location_id, as_of_us, now_us)


class SnapshotImport:
    """One location's snapshot, applied all or nothing on commit().

    Each record is an update keyed at as_of. After the upsert every record the
    snapshot named has an on_hand key above the zero key at as_of (it was written at
    as_of, or kept as newer), so the records still below it are exactly those it left
    out: they drop to zero. A sku repeated within one snapshot is simply more than one
    update at as_of: the rule picks each field's winner, and each record counts as
    applied if it set a field when it was written (in the order sent).
    """

    def __init__(self, writer: FeedWriter, location_id: str, as_of_us: int, now_us: int) -> None:
        self._writer = writer
        self.location_id = location_id
        self.as_of_us = as_of_us
        self._now_us = now_us
        self.received = 0
        self._pooled = writer._engine.raw_connection()
        self._connection: Any = self._pooled.driver_connection
        self._open = True
        # Set by subclasses once the transaction is open: a snapshot older than the
        # location's newest one writes its on_hand as the zeros that one implied.
        self._late_to: int | None = None

    def _lock_and_check_late(self, cursor: Any) -> None:
        self._writer._dialect.lock_locations(cursor, [self.location_id])
        watermark = self._writer._watermarks(cursor, {self.location_id}).get(self.location_id)
        if watermark is not None and self.as_of_us < watermark:
            self._late_to = watermark

    def add(self, records: Sequence[tuple[str, int, int | None]]) -> None:
        """Stage (sku, on_hand, safety_stock) records."""
        raise NotImplementedError

    def _finish(self, cursor: Any, applied: int) -> SnapshotResult:
        """Zero what the snapshot left out, record the status, and commit."""
        m = self._writer._dialect.mark
        zeroed = 0
        if self._late_to is None:
            zero = snapshot_zero_key(self.as_of_us)
            cursor.execute(
                f"UPDATE stock SET on_hand = 0, source_updated_at_us = {m}, source_sequence = NULL,"
                f" on_hand_key = {m}, received_at_us = {m}"
                f" WHERE location_id = {m} AND on_hand_key < {m}",
                (
                    zero.source_updated_at_us,
                    zero.packed(),
                    self._now_us,
                    self.location_id,
                    zero.packed(),
                ),
            )
            zeroed = cursor.rowcount
        else:
            # Late: its on_hand writes are the zeros the newer snapshot implied, which
            # count as stale; a safety stock it still sets (none newer) is not counted.
            applied = 0
        settle_committed_holds(cursor, m, [self.location_id], self._now_us)
        stale = self.received - applied
        cursor.execute(
            self._writer._snapshot_status,
            (self.location_id, self.as_of_us, self._now_us, stale),
        )
        return SnapshotResult(self.received, applied, stale, zeroed)

    def commit(self) -> SnapshotResult:
        """Apply the snapshot and commit, all or nothing; on any failure nothing is applied."""
        try:
            result = self._apply()
            self._commit_transaction()
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._pooled.close()
        return result

    def _apply(self) -> SnapshotResult:
        """Write the staged records (the dialect's way), then _finish."""
        raise NotImplementedError

    def _commit_transaction(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Roll back everything this import did (safe to call more than once)."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(Exception):
            self._rollback()
        self._pooled.close()

    def _rollback(self) -> None:
        raise NotImplementedError


class _SqliteSnapshot(SnapshotImport):
    """Records go straight into the stock table inside one open write transaction."""

    def __init__(self, writer: FeedWriter, location_id: str, as_of_us: int, now_us: int) -> None:
        super().__init__(writer, location_id, as_of_us, now_us)
        self._connection.execute("BEGIN IMMEDIATE")
        cursor = self._connection.cursor()
        self._lock_and_check_late(cursor)
        cursor.close()
        self._changes_before = self._connection.total_changes
        # Parameters: ?1 sku, ?2 location, ?3 on_hand, ?4 safety stock, ?5 on_hand's time,
        # ?6 now, ?7 on_hand's key, ?8 safety stock's key (None without one).
        self._sql = upsert(
            "VALUES (?1, ?2, ?3, 0, ?4, ?6, ?5, NULL, ?7, ?8)", relative=False, returning=False
        )

    def add(self, records: Sequence[tuple[str, int, int | None]]) -> None:
        location_id, as_of, now = self.location_id, self.as_of_us, self._now_us
        # Each record is an update keyed at as_of (domain.feed_order.update_key, packed
        # here in one step: this runs for every record of snapshots of a million).
        keyed = [
            (
                sku,
                on_hand,
                safety,
                pack_key(as_of, -1, 2 * on_hand + 1, -1 if safety is None else safety),
            )
            for sku, on_hand, safety in records
        ]
        if self._late_to is None:
            rows = [
                (
                    sku,
                    location_id,
                    on_hand,
                    safety,
                    as_of,
                    now,
                    key,
                    None if safety is None else key,
                )
                for sku, on_hand, safety, key in keyed
            ]
        else:
            # Older than the newest snapshot: on_hand lands as the zero that one implied.
            zero = snapshot_zero_key(self._late_to)
            time, zero_key = zero.source_updated_at_us, zero.packed()
            rows = [
                (sku, location_id, 0, safety, time, now, zero_key, None if safety is None else key)
                for sku, _, safety, key in keyed
            ]
        self._connection.executemany(self._sql, rows)
        self.received += len(records)

    def _apply(self) -> SnapshotResult:
        # The records are already in the table, inside the open transaction.
        applied = self._connection.total_changes - self._changes_before
        return self._finish(self._connection.cursor(), applied)

    def _commit_transaction(self) -> None:
        self._connection.execute("COMMIT")

    def _rollback(self) -> None:
        self._connection.execute("ROLLBACK")


class _PostgresSnapshot(SnapshotImport):
    """Records are COPYed into a temporary table, then merged in the same transaction."""

    def __init__(self, writer: FeedWriter, location_id: str, as_of_us: int, now_us: int) -> None:
        super().__init__(writer, location_id, as_of_us, now_us)
        self._table = f"snapshot_{uuid.uuid4().hex}"
        # A snapshot is one long transaction by design: the per-statement timeout that
        # guards requests does not apply to its merge.
        self._connection.execute("SET LOCAL statement_timeout = 0")
        # position keeps the order records arrived in, for a sku sent more than once.
        self._connection.execute(
            f"CREATE TEMPORARY TABLE {self._table} (position bigserial, sku text NOT NULL,"
            " on_hand bigint NOT NULL, safety_stock bigint) ON COMMIT DROP"
        )

    def add(self, records: Sequence[tuple[str, int, int | None]]) -> None:
        with (
            self._connection.cursor() as cursor,
            cursor.copy(f"COPY {self._table} (sku, on_hand, safety_stock) FROM STDIN") as copy,
        ):
            for record in records:
                copy.write_row(record)
        self.received += len(records)

    def _apply(self) -> SnapshotResult:
        with self._connection.cursor() as cursor:
            # The location's lock is taken here, for the merge only, not while the records
            # stream in: a stream that stalls or is cut then holds up no other writer.
            self._lock_and_check_late(cursor)
            # Each record's key, packed in SQL as domain.feed_order.update_key packs it.
            record_key = pack_key_sql(
                "%(as_of)s::bigint",
                "-1",
                "2 * on_hand + 1",
                "COALESCE(safety_stock, -1)",
                postgres=True,
            )
            if self._late_to is None:
                on_hand, time, on_hand_key = "on_hand", "%(as_of)s", record_key
            else:
                # Older than the newest snapshot: on_hand lands as the zero that one implied.
                on_hand, time, on_hand_key = "0", "%(late)s", "%(zero)s"
            select = (
                f"SELECT sku, %(location)s, {on_hand}, 0, safety_stock, %(now)s, {time}, NULL,"
                f" {on_hand_key}, CASE WHEN safety_stock IS NULL THEN NULL ELSE {record_key} END"
                " FROM {source} WHERE true"
            )
            params: dict[str, Any] = {
                "location": self.location_id,
                "as_of": self.as_of_us,
                "now": self._now_us,
            }
            if self._late_to is not None:
                zero = snapshot_zero_key(self._late_to)
                params.update(late=zero.source_updated_at_us, zero=zero.packed())
            try:
                # Most snapshots name each sku once: merge in one statement.
                with self._connection.transaction():
                    cursor.execute(
                        upsert(select.format(source=self._table), relative=False, returning=False),
                        params,
                    )
                applied = cursor.rowcount
            except psycopg.errors.CardinalityViolation:
                # A sku sent more than once: one statement may not touch a row twice, so
                # merge the first of each sku, then the second, and so on, in the order sent.
                ranked = (
                    f"(SELECT *, row_number() OVER (PARTITION BY sku ORDER BY position) AS pass"
                    f" FROM {self._table}) AS ranked"
                )
                merge = upsert(
                    select.format(source=ranked).replace("WHERE true", "WHERE pass = %(pass)s"),
                    relative=False,
                    returning=False,
                )
                cursor.execute(
                    f"SELECT max(n) FROM (SELECT count(*) AS n FROM {self._table} GROUP BY sku) c"
                )
                (passes,) = cursor.fetchone()
                applied = 0
                for number in range(1, passes + 1):
                    cursor.execute(merge, {**params, "pass": number})
                    applied += cursor.rowcount
            return self._finish(cursor, applied)

    def _commit_transaction(self) -> None:
        self._connection.commit()

    def _rollback(self) -> None:
        self._connection.rollback()
