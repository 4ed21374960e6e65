"""Incoming supply through the feed service: line updates, snapshots of a location's
lines, and the list of open lines.

The ordering rule is the store's (store/incoming.py); this layer checks locations,
tells the change bus which (sku, location) pairs' incoming changed, and says whether
each listed line still counts (domain/channels.py: through its expected date at the
location, not the day after).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from omnistock.server.domain.channels import incoming_counts_until
from omnistock.server.domain.feed_order import IncomingUpdate
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.service.changes import ChangeBus, Changes
from omnistock.server.service.feeds import RecordReject
from omnistock.server.store.incoming import IncomingStore

LineKey = tuple[str, str, str]  # (location_id, sku, line_id): the list's order


@dataclass(frozen=True, slots=True)
class IncomingResult:
    applied: int
    stale: int
    rejects: list[RecordReject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IncomingSnapshotOutcome:
    applied: int
    stale: int
    zeroed: int


@dataclass(frozen=True, slots=True)
class ListedIncoming:
    location_id: str
    sku: str
    line_id: str
    quantity: int
    expected: date
    counts: bool  # its date has not passed at the location


class IncomingService:
    def __init__(
        self,
        store: IncomingStore,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
        changes: ChangeBus | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._clock = clock
        self._changes = changes or ChangeBus()

    def apply_updates(
        self, updates: Sequence[tuple[int, IncomingUpdate]], rejects: Sequence[RecordReject]
    ) -> IncomingResult:
        """Apply a batch's valid (index, update) lines; those at unknown locations are
        rejected (LOCATION_NOT_FOUND), as ``rejects`` (lines that failed validation) are."""
        known = self._directory.known(dict.fromkeys(u.location_id for _, u in updates))
        all_rejects = list(rejects)
        valid: list[IncomingUpdate] = []
        for index, u in updates:
            if u.location_id in known:
                valid.append(u)
            else:
                all_rejects.append(
                    RecordReject(
                        index, "location_id", "LOCATION_NOT_FOUND", f"no location {u.location_id!r}"
                    )
                )
        applied = 0
        if valid:
            try:
                applied = sum(self._store.apply(valid, now_us=to_micros(self._clock())))
            finally:
                # Also after a failure: the transaction may have committed before it.
                self._changes.publish(
                    Changes(incoming=frozenset((u.sku, u.location_id) for u in valid))
                )
        return IncomingResult(
            applied, len(valid) - applied, sorted(all_rejects, key=lambda r: r.index)
        )

    def import_snapshot(
        self, location_id: str, as_of: datetime, lines: Sequence[tuple[str, str, int, date]]
    ) -> IncomingSnapshotOutcome:
        """Replace a location's incoming lines as of ``as_of``, all or nothing; NOT_FOUND
        for an unknown location."""
        self._directory.require([location_id])
        touched = {sku for sku, _, _, _ in lines}
        try:
            result = self._store.apply_snapshot(
                location_id, to_micros(as_of), lines, now_us=to_micros(self._clock())
            )
            touched |= result.zeroed_skus
        finally:
            self._changes.publish(
                Changes(incoming=frozenset((sku, location_id) for sku in touched))
            )
        return IncomingSnapshotOutcome(result.applied, len(lines) - result.applied, result.zeroed)

    def list_lines(
        self,
        *,
        sku: str,
        location_id: str,
        after: LineKey | None,
        limit: int,
        visible: frozenset[str] | None = None,
    ) -> tuple[list[ListedIncoming], LineKey | None]:
        """A page of open lines of a sku and/or a location, of the locations ``visible`` (a
        caller's scope; None: all), and the key to continue after (None on the last page).
        NOT_FOUND for an unknown location named."""
        if location_id:
            self._directory.require([location_id])
        rows = self._store.page(
            sku=sku, location_id=location_id, after=after, limit=limit + 1, locations=visible
        )
        more = len(rows) > limit
        rows = rows[:limit]
        now = self._clock()
        zones = self._directory.by_id()
        page = []
        for row in rows:
            location = zones.get(row.location_id)
            zone = "UTC" if location is None else location.time_zone
            page.append(
                ListedIncoming(
                    row.location_id,
                    row.sku,
                    row.line_id,
                    row.quantity,
                    row.expected,
                    now < incoming_counts_until(row.expected, zone),
                )
            )
        last = rows[-1] if more else None
        return page, None if last is None else (last.location_id, last.sku, last.line_id)
