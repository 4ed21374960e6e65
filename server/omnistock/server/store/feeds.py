"""Feed writes: ordered upserts for deltas, feed status; snapshots are in store/snapshots.py.

Feeds are the write hot path, so they run on a DBAPI connection with SQL
written here for each dialect, the one place it differs by database. Through
an SQLAlchemy Connection a per-record upsert costs about 50 us; on the raw
cursor, about 5 us.

The ordering rule (DESIGN.md, domain/feed_order.py): each field of a record keeps
the key of the update that last set it, and an update sets each field it carries
whose stored key is lower. The upsert (store/stock_upsert.py) compares each field's
packed key in the same statement as the write. Equal is not newer, so an exact replay
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

On PostgreSQL, writers of
one location's stock take a transaction-scoped advisory lock on it while they write
(a delta batch; a snapshot's merge, not its stream), so two feeds writing the same
location queue instead of racing on rows that do not exist yet.
"""

from __future__ import annotations

import contextlib
import enum
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from omnistock.server.domain.feed_order import (
    DeltaRow,
    snapshot_zero_key,
)
from omnistock.server.store.database import raw_write_transaction
from omnistock.server.store.settlement import settle_committed_holds
from omnistock.server.store.snapshots import SnapshotImport, SnapshotResult, begin_snapshot
from omnistock.server.store.stock_upsert import Dialect, upsert
from sqlalchemy import Engine

__all__ = ["DeltaOutcome", "FeedWriter", "SnapshotImport", "SnapshotResult"]


class DeltaOutcome(enum.Enum):
    """What one delta record did."""

    APPLIED = "APPLIED"  # it set on_hand, safety stock or both
    STALE = "STALE"  # every field it carries has a newer (or equal) key stored
    OUT_OF_RANGE = "OUT_OF_RANGE"  # an adjustment that would take on_hand out of range


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
        self._dialect = d = Dialect(engine.dialect.name == "postgresql")
        m = d.mark
        values = "VALUES (" + ", ".join([m] * 10) + ")"
        self._absolute = upsert(values, relative=False, returning=True)
        self._relative = upsert(values, relative=True, returning=True)
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
        """Open a snapshot import (store/snapshots.py): add() records, then commit() or
        abort()."""
        return begin_snapshot(self, location_id, as_of_us, now_us)
