"""Feed writes: ordered upserts for deltas, all-or-nothing snapshots, feed status.

Feeds are the write hot path, so they run on a DBAPI connection with SQL
written here for each dialect, the one place it differs by database. Through
an SQLAlchemy Connection a per-record upsert costs about 50 us; on the raw
cursor, about 5 us.

The ordering rule (DESIGN.md, domain/feed_order.py): each field of a record keeps
the key of the update that last set it, and an update sets each field it carries
whose stored key is lower. The upserts below compare the keys as SQL row values,
field by field, atomically with the write. Equal is not newer, so an exact replay
changes nothing.

A snapshot says the location held nothing else as of its time, so its as_of is a
watermark for the location: the records it left out drop to zero with the lowest
key at as_of, and a late update older than the newest snapshot, for a sku the
snapshot did not name, lands as that same zero (its safety stock, if newer, still
applies). With that, any order of the same absolute updates and snapshots ends in
the same state (tests/feeds/test_feed_order.py).

Quantities stay within their documented range: a relative adjustment that would take
on_hand out of it sets nothing and is reported (DeltaOutcome.OUT_OF_RANGE), and the
schema's CHECK constraints back that up.

Snapshots run in one transaction that stays open while the records stream in,
so a crash or a dropped stream leaves the previous state whole. On SQLite that
transaction holds the database's write lock for the length of the import
(other writers wait, readers do not); on PostgreSQL the records go to a
temporary table through COPY and are merged at the end. On PostgreSQL, writers of
one location's stock take a transaction-scoped advisory lock on it while they write
(a delta batch; a snapshot's merge, not its stream), so two feeds writing the same
location queue instead of racing on rows that do not exist yet.
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from omnistock.server.domain.feed_order import (
    MAX_QUANTITY,
    MIN_ON_HAND,
    DeltaRow,
    pack_key,
    snapshot_zero_key,
)
from omnistock.server.store.database import raw_write_transaction
from omnistock.server.store.packed_keys import pack_key_sql
from omnistock.server.store.reservations import settle_committed_holds
from sqlalchemy import Engine

_COLUMNS = (
    "sku, location_id, on_hand, reserved, safety_stock, received_at_us,"
    " source_updated_at_us, source_sequence, on_hand_key, safety_key"
)
_RETURNING = " RETURNING stock.on_hand_key, stock.safety_key"


def _upsert(rows: str, *, relative: bool, returning: bool) -> str:
    """INSERT ... ON CONFLICT that sets each field whose stored key is lower.

    ``rows`` is the VALUES or SELECT giving the rows, in _COLUMNS order. Each carries the
    update's values and, per field, the packed key to store: on_hand's (with its time and
    sequence) and, when it carries a safety stock, safety stock's.
    """
    on_hand_newer = "excluded.on_hand_key > stock.on_hand_key"
    safety_newer = (
        "(excluded.safety_key IS NOT NULL"
        " AND (stock.safety_key IS NULL OR excluded.safety_key > stock.safety_key))"
    )
    on_hand = "stock.on_hand + excluded.on_hand" if relative else "excluded.on_hand"
    if relative:
        # An adjustment that would leave the range sets nothing; the row still comes
        # back (keys unchanged), which tells it from a stale one (no row).
        in_range = f"({on_hand} BETWEEN {MIN_ON_HAND} AND {MAX_QUANTITY})"
        set_on_hand = f"({on_hand_newer} AND {in_range})"
        set_safety = f"({safety_newer} AND ({in_range} OR NOT {on_hand_newer}))"
    else:
        set_on_hand, set_safety = f"({on_hand_newer})", safety_newer

    def when(condition: str, column: str, value: str) -> str:
        return f"{column} = CASE WHEN {condition} THEN {value} ELSE stock.{column} END"

    sets = [when(set_on_hand, "on_hand", on_hand)]
    sets += [
        when(set_on_hand, c, f"excluded.{c}")
        for c in ("source_updated_at_us", "source_sequence", "on_hand_key")
    ]
    sets += [when(set_safety, c, f"excluded.{c}") for c in ("safety_stock", "safety_key")]
    sets += [when(f"{set_on_hand} OR {set_safety}", "received_at_us", "excluded.received_at_us")]
    return (
        f"INSERT INTO stock ({_COLUMNS}) {rows} "
        "ON CONFLICT (sku, location_id) DO UPDATE SET "
        + ", ".join(sets)
        + f" WHERE {on_hand_newer} OR {safety_newer}"
        + (_RETURNING if returning else "")
    )


class DeltaOutcome(enum.Enum):
    """What one delta record did."""

    APPLIED = "APPLIED"  # it set on_hand, safety stock or both
    STALE = "STALE"  # every field it carries has a newer (or equal) key stored
    OUT_OF_RANGE = "OUT_OF_RANGE"  # an adjustment that would take on_hand out of range


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    received: int
    applied: int
    stale: int
    zeroed: int


@dataclass(frozen=True, slots=True)
class _Dialect:
    postgres: bool

    @property
    def mark(self) -> str:
        return "%s" if self.postgres else "?"

    def greatest(self, a: str, b: str) -> str:
        # Both ignore NULLs this way: PostgreSQL's GREATEST does; SQLite's max() does not.
        fn = "GREATEST" if self.postgres else "max"
        return f"{fn}(COALESCE({a}, {b}), COALESCE({b}, {a}))"

    def lock_locations(self, cursor: Any, location_ids: Sequence[str]) -> None:
        """Queue behind other writers of these locations' stock (PostgreSQL; SQLite's write
        lock already serialises writers). In sorted order, so two writers cannot deadlock."""
        if self.postgres:
            for location_id in sorted(set(location_ids)):
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    ("omnistock.stock:" + location_id,),
                )


def _outcome(
    row: DeltaRow, own: bytes, key: bytes | None, stored: tuple[Any, ...] | None
) -> DeltaOutcome:
    """What a row did, from the packed keys its upsert left stored (``stored`` None: the
    upsert wrote nothing, every field it carries had a newer key; ``own``: the row's
    packed key; ``key`` None: its on_hand landed as a newer snapshot's zero)."""
    if stored is None:
        return DeltaOutcome.STALE
    if (key is not None and bytes(stored[0]) == own) or (
        row.safety_stock is not None and stored[1] is not None and bytes(stored[1]) == own
    ):
        return DeltaOutcome.APPLIED
    if row.relative and key is not None:
        # The row came back with its keys unchanged: the adjustment was out of range.
        return DeltaOutcome.OUT_OF_RANGE
    # The late zero of a snapshot, landing on a new row, with no safety stock to set.
    return DeltaOutcome.STALE


class FeedWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = d = _Dialect(engine.dialect.name == "postgresql")
        m = d.mark
        values = "VALUES (" + ", ".join([m] * 10) + ")"
        self._absolute = _upsert(values, relative=False, returning=True)
        self._relative = _upsert(values, relative=True, returning=True)
        self._delta_status = (
            "INSERT INTO feed_status (location_id, last_delta_source_us, last_delta_received_us,"
            " snapshot_count, delta_applied_count, stale_count, rejected_count)"
            f" VALUES ({m}, {m}, {m}, 0, {m}, {m}, {m}) ON CONFLICT (location_id) DO UPDATE SET "
            "last_delta_source_us = "
            + d.greatest("feed_status.last_delta_source_us", "excluded.last_delta_source_us")
            + ", last_delta_received_us = excluded.last_delta_received_us,"
            " delta_applied_count = feed_status.delta_applied_count + excluded.delta_applied_count,"
            " stale_count = feed_status.stale_count + excluded.stale_count,"
            " rejected_count = feed_status.rejected_count + excluded.rejected_count"
        )
        self._snapshot_status = (
            "INSERT INTO feed_status (location_id, last_snapshot_as_of_us, last_snapshot_received_us,"
            " snapshot_count, delta_applied_count, stale_count, rejected_count)"
            f" VALUES ({m}, {m}, {m}, 1, 0, {m}, 0) ON CONFLICT (location_id) DO UPDATE SET "
            "last_snapshot_as_of_us = "
            + d.greatest("feed_status.last_snapshot_as_of_us", "excluded.last_snapshot_as_of_us")
            + ", last_snapshot_received_us = excluded.last_snapshot_received_us,"
            " snapshot_count = feed_status.snapshot_count + 1,"
            " stale_count = feed_status.stale_count + excluded.stale_count"
        )

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        return raw_write_transaction(self._engine)

    def apply_deltas(
        self,
        rows: Sequence[DeltaRow],
        *,
        now_us: int,
        rejected_by_location: dict[str, int] | None = None,
    ) -> list[DeltaOutcome]:
        """Apply valid delta rows in one transaction; the outcome of each, in order.

        ``rejected_by_location`` counts the batch's invalid records per known
        location, for the feed status; adjustments out of range count there too.
        """
        outcomes: list[DeltaOutcome] = []
        applied: defaultdict[str, int] = defaultdict(int)
        stale: defaultdict[str, int] = defaultdict(int)
        rejected: defaultdict[str, int] = defaultdict(int, rejected_by_location or {})
        newest: dict[str, int] = {}
        with self._transaction() as connection:
            cursor = connection.cursor()
            self._dialect.lock_locations(cursor, [row.location_id for row in rows])
            watermarks = self._watermarks(cursor, {row.location_id for row in rows})
            # The zero each location's newest snapshot implied: an update below it is late.
            zeros = {location: snapshot_zero_key(as_of) for location, as_of in watermarks.items()}
            late_below = {location: zero.packed() for location, zero in zeros.items()}
            statements: list[tuple[str, tuple[Any, ...]]] = []
            # Per row: its packed key, or None when it is older than the location's newest
            # snapshot and its on_hand lands as the zero that snapshot implied.
            keys: list[bytes | None] = []
            packed_keys: list[bytes] = []
            absolute, relative = self._absolute, self._relative
            for row in rows:
                packed = row.packed_key()
                packed_keys.append(packed)
                safety_key = packed if row.safety_stock is not None else None
                below = late_below.get(row.location_id)
                if below is not None and packed < below:
                    zero = zeros[row.location_id]
                    statements.append(
                        (
                            absolute,
                            (row.sku, row.location_id, 0, 0, row.safety_stock, now_us,
                             zero.source_updated_at_us, None, below, safety_key),
                        )
                    )  # fmt: skip
                    keys.append(None)
                else:
                    statements.append(
                        (
                            relative if row.relative else absolute,
                            (row.sku, row.location_id, row.quantity, 0, row.safety_stock, now_us,
                             row.source_updated_at_us, row.source_sequence, packed, safety_key),
                        )
                    )  # fmt: skip
                    keys.append(packed)
            for row, own, own_key, stored in zip(
                rows, packed_keys, keys, self._run_upserts(cursor, statements), strict=True
            ):
                outcome = _outcome(row, own, own_key, stored)
                outcomes.append(outcome)
                if outcome is DeltaOutcome.APPLIED:
                    applied[row.location_id] += 1
                    if row.source_updated_at_us > newest.get(row.location_id, -1):
                        newest[row.location_id] = row.source_updated_at_us
                elif outcome is DeltaOutcome.STALE:
                    stale[row.location_id] += 1
                else:
                    rejected[row.location_id] += 1
            settle_committed_holds(cursor, self._dialect.mark, sorted(applied), now_us)
            for location_id in applied.keys() | stale.keys() | rejected.keys():
                cursor.execute(
                    self._delta_status,
                    (
                        location_id,
                        newest.get(location_id),
                        now_us,
                        applied.get(location_id, 0),
                        stale.get(location_id, 0),
                        rejected.get(location_id, 0),
                    ),
                )
            cursor.close()
        return outcomes

    def _run_upserts(
        self, cursor: Any, statements: list[tuple[str, tuple[Any, ...]]]
    ) -> list[tuple[Any, ...] | None]:
        """Run (sql, params) upserts in order; for each, the keys of the row it wrote (None
        when it wrote nothing)."""
        if not self._dialect.postgres:
            stored = []
            for sql, params in statements:
                cursor.execute(sql, params)
                stored.append(cursor.fetchone())
            return stored
        # PostgreSQL: one pipelined executemany per run of the same statement, instead
        # of a network round trip per record.
        stored = []
        start = 0
        while start < len(statements):
            end = start
            while end < len(statements) and statements[end][0] == statements[start][0]:
                end += 1
            cursor.executemany(
                statements[start][0], [p for _, p in statements[start:end]], returning=True
            )
            for _ in range(start, end):
                stored.append(cursor.fetchone())
                cursor.nextset()
            start = end
        return stored

    def _watermarks(self, cursor: Any, location_ids: set[str]) -> dict[str, int]:
        """The newest snapshot as_of of each location that has had one."""
        if not location_ids:
            return {}
        marks = ", ".join([self._dialect.mark] * len(location_ids))
        cursor.execute(
            "SELECT location_id, last_snapshot_as_of_us FROM feed_status"
            f" WHERE last_snapshot_as_of_us IS NOT NULL AND location_id IN ({marks})",
            tuple(location_ids),
        )
        return dict(cursor.fetchall())

    def begin_snapshot(self, location_id: str, as_of_us: int, *, now_us: int) -> SnapshotImport:
        """Open a snapshot import: add() records, then commit() or abort()."""
        if self._dialect.postgres:
            return _PostgresSnapshot(self, location_id, as_of_us, now_us)
        return _SqliteSnapshot(self, location_id, as_of_us, now_us)


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
        self._sql = _upsert(
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
                        _upsert(select.format(source=self._table), relative=False, returning=False),
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
                merge = _upsert(
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
