"""Feeds: batch updates, delta streams, snapshots, feed status and exports.

The ordering rule itself is enforced by the store, atomically, in SQL; this
layer checks locations, keeps the read cache coherent and reports.

An adjustment that would take on_hand outside [-MAX_QUANTITY, MAX_QUANTITY] sets
nothing: in a delta stream it is rejected for that record (reason
QUANTITY_OUT_OF_RANGE).
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from omnistock.server.domain.feed_order import MAX_QUANTITY, DeltaRow
from omnistock.server.domain.locations import Location
from omnistock.server.domain.stock import AvailabilityView, Exposure, is_stale, view_record
from omnistock.server.domain.timeutil import from_micros, to_micros
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.service.changes import ChangeBus, Changes
from omnistock.server.store.feed_status import FeedStatusRecord, FeedStatusRepository
from omnistock.server.store.feeds import (
    DeltaOutcome,
    FeedWriter,
    SnapshotImport,
    SnapshotResult,
)

EXPORT_PAGE_SIZE = 1_000
_OUT_OF_RANGE = f"would take on_hand outside [-{MAX_QUANTITY:,}, {MAX_QUANTITY:,}]"


class Freshness(enum.Enum):
    FRESH = "FRESH"
    STALE = "STALE"
    NEVER_REPORTED = "NEVER_REPORTED"


@dataclass(frozen=True, slots=True)
class RecordReject:
    index: int
    field: str
    reason: str
    description: str


@dataclass(frozen=True, slots=True)
class DeltaResult:
    applied: int
    stale: int
    rejects: list[RecordReject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    record: FeedStatusRecord
    freshness: Freshness


class SnapshotSession:
    """A snapshot being received: add() batches, then commit(); abort() on any failure.

    Each call runs on an executor thread. When the client cancels, the call's task is
    cancelled while an add() may still be running, and its abort() comes on another
    thread: on one database connection, a rollback beside a running insert fails, and
    the insert then lands outside any transaction. So the calls take turns, and once the
    snapshot is aborted (or committed) an add() does nothing.
    """

    def __init__(self, staging: SnapshotImport, location_id: str, changes: ChangeBus) -> None:
        self._staging = staging
        self._location_id = location_id
        self._changes = changes
        self._turn = threading.Lock()
        self._ended = False

    def add(self, records: Sequence[tuple[str, int, int | None]]) -> None:
        with self._turn:
            if not self._ended:
                self._staging.add(records)

    def commit(self) -> SnapshotResult:
        with self._turn:
            if self._ended:
                raise RuntimeError("the snapshot was aborted")
            self._ended = True
            try:
                return self._staging.commit()
            finally:
                # A snapshot rewrites a whole location.
                self._changes.publish(Changes(locations=frozenset([self._location_id])))

    def abort(self) -> None:
        with self._turn:
            self._ended = True
            self._staging.abort()


class FeedService:
    def __init__(
        self,
        writer: FeedWriter,
        status: FeedStatusRepository,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
        changes: ChangeBus | None = None,
    ) -> None:
        self._writer = writer
        self._status = status
        self._directory = directory
        self._clock = clock
        self._changes = changes or ChangeBus()

    def apply_stock_updates(self, rows: Sequence[DeltaRow]) -> tuple[int, int]:
        """Apply a batch of absolute updates all or nothing: an unknown location rejects the
        whole batch."""
        self._directory.require(dict.fromkeys(row.location_id for row in rows))
        outcomes = self._apply(rows, {})
        applied = outcomes.count(DeltaOutcome.APPLIED)
        return applied, len(outcomes) - applied

    def apply_deltas(
        self,
        rows: Sequence[tuple[int, DeltaRow]],
        rejects: Sequence[tuple[RecordReject, str]],
    ) -> DeltaResult:
        """Apply a batch's valid (index, row) records; reject those at unknown locations.

        ``rejects`` are the records that failed validation, each with the
        location id it named, so that the location's status counts it.
        """
        named = dict.fromkeys([row.location_id for _, row in rows] + [loc for _, loc in rejects])
        known = self._directory.known(named)
        all_rejects = [reject for reject, _ in rejects]
        valid: list[tuple[int, DeltaRow]] = []
        for index, row in rows:
            if row.location_id in known:
                valid.append((index, row))
            else:
                all_rejects.append(
                    RecordReject(
                        index,
                        "location_id",
                        "LOCATION_NOT_FOUND",
                        f"no location {row.location_id!r}",
                    )
                )
        rejected = Counter(loc for _, loc in rejects if loc in known)
        outcomes = self._apply([row for _, row in valid], dict(rejected))
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome is DeltaOutcome.OUT_OF_RANGE:
                all_rejects.append(
                    RecordReject(index, "adjustment", "QUANTITY_OUT_OF_RANGE", _OUT_OF_RANGE)
                )
        return DeltaResult(
            outcomes.count(DeltaOutcome.APPLIED),
            outcomes.count(DeltaOutcome.STALE),
            sorted(all_rejects, key=lambda r: r.index),
        )

    def _apply(self, rows: Sequence[DeltaRow], rejected: dict[str, int]) -> list[DeltaOutcome]:
        if not rows and not rejected:
            return []
        try:
            return self._writer.apply_deltas(
                rows,
                now_us=to_micros(self._clock()),
                rejected_by_location=rejected,
            )
        finally:
            # Also after a failure: the transaction may have committed before it.
            self._changes.publish(Changes.of_pairs((row.sku, row.location_id) for row in rows))

    def begin_snapshot(self, location_id: str, as_of: datetime) -> SnapshotSession:
        self._directory.require([location_id])
        staging = self._writer.begin_snapshot(
            location_id, to_micros(as_of), now_us=to_micros(self._clock())
        )
        return SnapshotSession(staging, location_id, self._changes)

    def feed_status(self, location_id: str) -> FeedStatus:
        [location] = self._directory.require([location_id])
        records = self._status.for_locations([location_id])
        return self._status_of(location, records.get(location_id))

    def list_feed_status(
        self, *, after_id: str, limit: int, visible: frozenset[str] | None = None
    ) -> tuple[list[FeedStatus], str | None]:
        """A page of the status of the locations ``visible`` (a caller's scope; None: all),
        and the id to continue after (None on the last page)."""
        locations = [
            loc
            for loc in self._directory.all()
            if loc.id > after_id and (visible is None or loc.id in visible)
        ][: limit + 1]
        more = len(locations) > limit
        locations = locations[:limit]
        records = self._status.for_locations([loc.id for loc in locations])
        page = [self._status_of(loc, records.get(loc.id)) for loc in locations]
        return page, (locations[-1].id if more else None)

    def _status_of(self, location: Location, record: FeedStatusRecord | None) -> FeedStatus:
        record = record or FeedStatusRecord(location.id)
        newest = max(
            (
                t
                for t in (record.last_snapshot_as_of_us, record.last_delta_source_us)
                if t is not None
            ),
            default=None,
        )
        if newest is None:
            freshness = Freshness.NEVER_REPORTED
        elif is_stale(self._clock() - from_micros(newest), location.effective_freshness_budget):
            freshness = Freshness.STALE
        else:
            freshness = Freshness.FRESH
        return FeedStatus(record, freshness)

    def export_stock(
        self, location_id: str | None, *, visible: frozenset[str] | None = None
    ) -> Iterator[list[AvailabilityView]]:
        """Exact answers for a location's records (or every active location's of those
        ``visible``, a caller's scope; None: all), a page at a time."""
        if location_id:
            locations = self._directory.require([location_id])
        else:
            locations = [
                loc for loc in self._directory.active() if visible is None or loc.id in visible
            ]
        for location in locations:
            after = ""
            while True:
                records = self._status.stock_page(
                    location.id, after_sku=after, limit=EXPORT_PAGE_SIZE
                )
                if not records:
                    break
                now = self._clock()
                yield [
                    view_record(r, location.stock_policy, now=now, exposure=Exposure.EXACT)
                    for r in records
                ]
                after = records[-1].sku
