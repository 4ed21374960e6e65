"""FeedService's incoming supply methods: ApplyIncomingUpdates, ImportIncomingSnapshot
and ListIncomingSupply, mixed into FeedServicer (transport/feeds.py).

Checks mirror the stock feed's: ids, quantity 0..MAX_QUANTITY, a real "YYYY-MM-DD"
expected date within 2000..2100, source_updated_at required within 2000..2100, a
sequence not negative, at most MAX_STOCK_UPDATES lines. ApplyIncomingUpdates rejects
bad lines one by one (as StreamDeltas does); ImportIncomingSnapshot refuses the whole
snapshot for any of them, or for a (sku, line_id) given twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from grpc import aio
from omnistock.server.domain.channels import EXPECTED_DATE_RULE, parse_expected_date
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.feed_order import IncomingUpdate
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.service.feeds import RecordReject
from omnistock.server.service.incoming import IncomingService, LineKey
from omnistock.server.service.limits import MAX_QUANTITY, MAX_STOCK_UPDATES
from omnistock.server.transport.auth import audit_note, principal
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.convert import check_source_timestamp, timestamp_to_datetime
from omnistock.server.transport.pages import PageTokens
from omnistock.server.transport.servicers import check_count
from omnistock.v1 import feed_pb2

_QUANTITY_RULE = f"must be within [0, {MAX_QUANTITY:,}]"


def reject_to_proto(reject: RecordReject) -> feed_pb2.RecordReject:
    return feed_pb2.RecordReject(
        index=reject.index, field=reject.field, reason=reject.reason, description=reject.description
    )


def check_line(
    v: Violations, prefix: str, sku: str, line_id: str, quantity: int, expected_date: str
) -> date | None:
    """Check the fields every incoming line has; its expected date when they are valid."""
    before = len(v.items)
    check_id(v, sku, f"{prefix}sku")
    check_id(v, line_id, f"{prefix}line_id")
    v.check(0 <= quantity <= MAX_QUANTITY, f"{prefix}quantity", _QUANTITY_RULE)
    expected = parse_expected_date(expected_date)
    if expected is None:
        v.add(f"{prefix}expected_date", EXPECTED_DATE_RULE)
    return expected if len(v.items) == before else None


def incoming_update(v: Violations, u: feed_pb2.IncomingUpdate) -> IncomingUpdate | None:
    """Check one line update; None (with violations added) when it is invalid."""
    before = len(v.items)
    check_id(v, u.location_id, "location_id")
    expected = check_line(v, "", u.sku, u.line_id, u.quantity, u.expected_date)
    check_source_timestamp(
        v, u.source_updated_at, "source_updated_at", u.HasField("source_updated_at")
    )
    has_sequence = u.HasField("source_sequence")
    v.check(not has_sequence or u.source_sequence >= 0, "source_sequence", "must not be negative")
    if len(v.items) > before or expected is None:
        return None
    return IncomingUpdate(
        u.location_id,
        u.sku,
        u.line_id,
        u.quantity,
        expected,
        to_micros(timestamp_to_datetime(u.source_updated_at)),
        u.source_sequence if has_sequence else None,
    )


def snapshot_lines(
    v: Violations, lines: Sequence[feed_pb2.IncomingLine]
) -> list[tuple[str, str, int, date]]:
    rows: list[tuple[str, str, int, date]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, line in enumerate(lines):
        prefix = f"lines[{i}]."
        expected = check_line(v, prefix, line.sku, line.line_id, line.quantity, line.expected_date)
        first = seen.setdefault((line.sku, line.line_id), i)
        if first != i:
            v.add(f"{prefix}line_id", f"repeats (sku, line_id) of lines[{first}]")
        elif expected is not None:
            rows.append((line.sku, line.line_id, line.quantity, expected))
    return rows


def checked_updates(
    updates: Sequence[feed_pb2.IncomingUpdate],
) -> tuple[list[tuple[int, IncomingUpdate]], list[RecordReject]]:
    """The valid (index, update) lines of a batch, and a reject for each invalid one."""
    valid: list[tuple[int, IncomingUpdate]] = []
    rejects: list[RecordReject] = []
    for index, u in enumerate(updates):
        problems = Violations()
        row = incoming_update(problems, u)
        if row is not None:
            valid.append((index, row))
            continue
        first = problems.items[0]
        description = "; ".join(f"{p.field}: {p.description}" for p in problems.items)
        rejects.append(RecordReject(index, first.field, "INVALID_FIELD", description))
    return valid, rejects


def checked_snapshot(
    request: feed_pb2.ImportIncomingSnapshotRequest,
) -> tuple[list[tuple[str, str, int, date]], Violations]:
    v = Violations()
    check_id(v, request.location_id, "location_id")
    check_source_timestamp(v, request.as_of, "as_of", request.HasField("as_of"))
    count = len(request.lines)
    v.check(
        count <= MAX_STOCK_UPDATES,
        "lines",
        f"must hold at most {MAX_STOCK_UPDATES:,} items, got {count:,}",
    )
    lines = snapshot_lines(v, request.lines) if count <= MAX_STOCK_UPDATES else []
    return lines, v


class IncomingFeedMethods:
    """The incoming supply RPCs of FeedServicer, which sets these attributes."""

    _incoming: IncomingService
    _runner: BlockingRunner
    _pages: PageTokens

    async def ApplyIncomingUpdates(
        self, request: feed_pb2.ApplyIncomingUpdatesRequest, context: aio.ServicerContext[Any, Any]
    ) -> feed_pb2.ApplyIncomingUpdatesResponse:
        v = Violations()
        check_count(v, len(request.updates), "updates", MAX_STOCK_UPDATES)
        v.raise_if_any()
        # Checking 10,000 lines takes a few hundred milliseconds: off the event loop.
        valid, rejects = await self._runner.run(checked_updates, request.updates)
        locations = sorted({u.location_id for _, u in valid})
        result = await self._runner.write(
            self._incoming.apply_updates,
            valid,
            rejects,
            noted=lambda r: audit_note(
                locations=locations, applied=r.applied, stale=r.stale, rejected=len(r.rejects)
            ),
        )
        return feed_pb2.ApplyIncomingUpdatesResponse(
            applied_count=result.applied,
            stale_count=result.stale,
            rejected_count=len(result.rejects),
            rejects=[reject_to_proto(r) for r in result.rejects],
        )

    async def ImportIncomingSnapshot(
        self,
        request: feed_pb2.ImportIncomingSnapshotRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> feed_pb2.ImportIncomingSnapshotResponse:
        lines, v = await self._runner.run(checked_snapshot, request)
        v.raise_if_any()
        result = await self._runner.write(
            self._incoming.import_snapshot,
            request.location_id,
            timestamp_to_datetime(request.as_of),
            lines,
            noted=lambda r: audit_note(
                location_id=request.location_id,
                applied=r.applied,
                stale=r.stale,
                zeroed=r.zeroed,
            ),
        )
        return feed_pb2.ImportIncomingSnapshotResponse(
            applied_count=result.applied, stale_count=result.stale, zeroed_count=result.zeroed
        )

    async def ListIncomingSupply(
        self, request: feed_pb2.ListIncomingSupplyRequest, context: aio.ServicerContext[Any, Any]
    ) -> feed_pb2.ListIncomingSupplyResponse:
        v = Violations()
        if request.sku:
            check_id(v, request.sku, "sku")
        if request.location_id:
            check_id(v, request.location_id, "location_id")
        if not request.sku and not request.location_id:
            v.add("sku", "one of sku and location_id is required")
        paging = self._pages.read(
            v,
            request.page_size,
            request.page_token,
            "ListIncomingSupply",
            request.sku,
            request.location_id,
        )
        after: LineKey | None = None
        if paging.after:
            location_id, sku, line_id = json.loads(paging.after)
            after = (location_id, sku, line_id)
        v.raise_if_any()
        page, next_after = await self._runner.run(
            self._incoming.list_lines,
            sku=request.sku,
            location_id=request.location_id,
            after=after,
            limit=paging.size,
            visible=principal().locations,
        )
        return feed_pb2.ListIncomingSupplyResponse(
            lines=[
                feed_pb2.IncomingSupply(
                    location_id=line.location_id,
                    sku=line.sku,
                    line_id=line.line_id,
                    quantity=line.quantity,
                    expected_date=line.expected.isoformat(),
                    counts=line.counts,
                )
                for line in page
            ],
            next_page_token=self._pages.next_token(
                paging, None if next_after is None else json.dumps(list(next_after))
            ),
        )
