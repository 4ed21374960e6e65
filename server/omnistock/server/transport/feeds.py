"""The FeedService servicer: batch updates, delta streams, snapshots, status and exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from grpc import aio
from omnistock.server.domain.errors import FieldViolation, InvalidArgument, Violations
from omnistock.server.domain.feed_order import DeltaRow
from omnistock.server.domain.ids import check_id, is_valid_id
from omnistock.server.domain.stock import Exposure
from omnistock.server.domain.timeutil import from_micros
from omnistock.server.service.feeds import (
    DeltaResult,
    FeedService,
    FeedStatus,
    Freshness,
    RecordReject,
    SnapshotSession,
)
from omnistock.server.service.incoming import IncomingService
from omnistock.server.service.limits import (
    MAX_QUANTITY,
    MAX_STOCK_UPDATES,
)
from omnistock.server.transport.auth import audit_note, principal
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.convert import (
    check_source_timestamp,
    datetime_to_timestamp,
    timestamp_to_datetime,
    view_to_proto,
)
from omnistock.server.transport.incoming import IncomingFeedMethods, reject_to_proto
from omnistock.server.transport.pages import PageTokens
from omnistock.server.transport.servicers import check_count
from omnistock.v1 import feed_pb2, feed_pb2_grpc

# A snapshot with bad records is refused, but the rest of its stream is still read to
# count them all; this many are kept to report (the status lists those that fit in it).
MAX_KEPT_VIOLATIONS = 1_000

_FRESHNESS = {
    Freshness.FRESH: feed_pb2.FRESHNESS_STATE_FRESH,
    Freshness.STALE: feed_pb2.FRESHNESS_STATE_STALE,
    Freshness.NEVER_REPORTED: feed_pb2.FRESHNESS_STATE_NEVER_REPORTED,
}


_QUANTITY_RANGE = f"must be within +-{MAX_QUANTITY:,}"
_SAFETY_RANGE = f"must be within [0, {MAX_QUANTITY:,}]"


def delta_row(v: Violations, record: feed_pb2.DeltaRecord, prefix: str) -> DeltaRow | None:
    """Check one delta record; None (with violations added) when it is invalid.

    It runs for every record of a feed, so each field is read from the message once."""
    before = len(v.items)
    location_id, sku = record.location_id, record.sku
    check_id(v, location_id, f"{prefix}location_id")
    check_id(v, sku, f"{prefix}sku")
    change = record.WhichOneof("change")
    if change is None:
        v.add(f"{prefix}on_hand", "one of on_hand or adjustment is required")
        quantity = 0
    else:
        quantity = record.adjustment if change == "adjustment" else record.on_hand
        if not -MAX_QUANTITY <= quantity <= MAX_QUANTITY:
            v.add(f"{prefix}{change}", _QUANTITY_RANGE)
    safety_stock = record.safety_stock if record.HasField("safety_stock") else None
    if safety_stock is not None and not 0 <= safety_stock <= MAX_QUANTITY:
        v.add(f"{prefix}safety_stock", _SAFETY_RANGE)
    stamp = record.source_updated_at
    check_source_timestamp(
        v, stamp, f"{prefix}source_updated_at", record.HasField("source_updated_at")
    )
    sequence = record.source_sequence if record.HasField("source_sequence") else None
    if sequence is not None and sequence < 0:
        v.add(f"{prefix}source_sequence", "must not be negative")
    if len(v.items) > before:
        return None
    return DeltaRow(
        location_id=location_id,
        sku=sku,
        quantity=quantity,
        relative=change == "adjustment",
        # Checked above to lie in years 2000-2100: the same as to_micros(the datetime).
        source_updated_at_us=stamp.seconds * 1_000_000 + stamp.nanos // 1_000,
        safety_stock=safety_stock,
        source_sequence=sequence,
    )


def snapshot_records(
    v: Violations, records: Sequence[feed_pb2.SnapshotRecord], first_index: int
) -> list[tuple[str, int, int | None]]:
    rows: list[tuple[str, int, int | None]] = []
    for offset, record in enumerate(records):
        sku, on_hand = record.sku, record.on_hand
        safety = record.safety_stock if record.HasField("safety_stock") else None
        # Checked inline: this runs once per record of snapshots of a million.
        if (
            is_valid_id(sku)
            and -MAX_QUANTITY <= on_hand <= MAX_QUANTITY
            and (safety is None or 0 <= safety <= MAX_QUANTITY)
        ):
            rows.append((sku, on_hand, safety))
            continue
        prefix = f"records[{first_index + offset}]."
        check_id(v, sku, f"{prefix}sku")
        v.check(
            abs(on_hand) <= MAX_QUANTITY, f"{prefix}on_hand", f"must be within +-{MAX_QUANTITY:,}"
        )
        v.check(
            safety is None or 0 <= safety <= MAX_QUANTITY,
            f"{prefix}safety_stock",
            f"must be within [0, {MAX_QUANTITY:,}]",
        )
    return rows


def status_to_proto(status: FeedStatus) -> feed_pb2.FeedStatus:
    r = status.record

    def stamp(value: int | None) -> Any:
        return None if value is None else datetime_to_timestamp(from_micros(value))

    return feed_pb2.FeedStatus(
        location_id=r.location_id,
        last_snapshot_as_of=stamp(r.last_snapshot_as_of_us),
        last_snapshot_received_at=stamp(r.last_snapshot_received_us),
        last_delta_source_at=stamp(r.last_delta_source_us),
        last_delta_received_at=stamp(r.last_delta_received_us),
        snapshot_count=r.snapshot_count,
        delta_applied_count=r.delta_applied_count,
        stale_count=r.stale_count,
        rejected_count=r.rejected_count,
        record_count=r.record_count,
        freshness=_FRESHNESS[status.freshness],
    )


class FeedServicer(IncomingFeedMethods, feed_pb2_grpc.FeedServiceServicer):
    """Scope rules (named locations, what lists and exports leave out): transport.scope.
    The incoming supply methods are in transport.incoming."""

    def __init__(
        self,
        service: FeedService,
        incoming: IncomingService,
        runner: BlockingRunner,
        pages: PageTokens,
    ) -> None:
        self._service = service
        self._incoming = incoming
        self._runner = runner
        self._pages = pages

    async def ApplyStockUpdates(
        self, request: feed_pb2.ApplyStockUpdatesRequest, context: aio.ServicerContext[Any, Any]
    ) -> feed_pb2.ApplyStockUpdatesResponse:
        v = Violations()
        check_count(v, len(request.updates), "updates", MAX_STOCK_UPDATES)
        rows: list[DeltaRow] = []
        if not v:
            for i, u in enumerate(request.updates):
                record = feed_pb2.DeltaRecord(
                    location_id=u.location_id,
                    sku=u.sku,
                    on_hand=u.on_hand,
                    source_updated_at=u.source_updated_at
                    if u.HasField("source_updated_at")
                    else None,
                )
                if u.HasField("safety_stock"):
                    record.safety_stock = u.safety_stock
                if u.HasField("source_sequence"):
                    record.source_sequence = u.source_sequence
                row = delta_row(v, record, f"updates[{i}].")
                if row is not None:
                    rows.append(row)
        v.raise_if_any()
        locations = sorted({row.location_id for row in rows})
        applied, stale = await self._runner.write(
            self._service.apply_stock_updates,
            rows,
            noted=lambda counts: audit_note(
                locations=locations, applied=counts[0], stale=counts[1]
            ),
        )
        return feed_pb2.ApplyStockUpdatesResponse(applied_count=applied, stale_count=stale)

    async def StreamDeltas(
        self,
        request_iterator: AsyncIterator[feed_pb2.StreamDeltasRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[feed_pb2.StreamDeltasResponse]:
        totals = {"batches": 0, "applied": 0, "stale": 0, "rejected": 0}
        touched: set[str] = set()
        # Noted after each batch, so that a stream that stops early is audited for what
        # it applied; a stream that ends well is audited even when it sent nothing.
        async for request in request_iterator:
            v = Violations()
            check_count(v, len(request.records), "records", MAX_STOCK_UPDATES)
            v.raise_if_any()
            rows: list[tuple[int, DeltaRow]] = []
            rejects: list[tuple[RecordReject, str]] = []
            for index, record in enumerate(request.records):
                problems = Violations()
                row = delta_row(problems, record, "")
                if row is not None:
                    rows.append((index, row))
                    continue
                first = problems.items[0]
                description = "; ".join(f"{p.field}: {p.description}" for p in problems.items)
                rejects.append(
                    (
                        RecordReject(index, first.field, "INVALID_FIELD", description),
                        record.location_id,
                    )
                )

            batch_locations = {row.location_id for _, row in rows}

            def tally(result: DeltaResult, batch_locations: set[str] = batch_locations) -> None:
                touched.update(batch_locations)
                totals["batches"] += 1
                totals["applied"] += result.applied
                totals["stale"] += result.stale
                totals["rejected"] += len(result.rejects)
                audit_note(locations=sorted(touched), **totals)

            result = await self._runner.write(
                self._service.apply_deltas, rows, rejects, noted=tally
            )
            yield feed_pb2.StreamDeltasResponse(
                batch_id=request.batch_id,
                applied_count=result.applied,
                stale_count=result.stale,
                rejected_count=len(result.rejects),
                rejects=[reject_to_proto(r) for r in result.rejects],
            )
        audit_note(locations=sorted(touched), **totals)

    async def ImportSnapshot(
        self,
        request_iterator: AsyncIterator[feed_pb2.ImportSnapshotRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> feed_pb2.ImportSnapshotResponse:
        session: SnapshotSession | None = None
        opened: list[SnapshotSession] = []
        committed = False
        try:
            received = 0
            first = True
            kept: list[FieldViolation] = []  # of the bad records, the first few
            found = 0  # bad records' violations, all of them
            complete = False
            async for request in request_iterator:
                v = Violations()
                v.check(not complete, "complete", "no message may follow the one that sets it")
                complete = complete or request.complete
                if first:
                    header = request.header
                    v.check(
                        request.HasField("header"),
                        "header",
                        "the first message must carry the header",
                    )
                    check_id(v, header.location_id, "header.location_id")
                    check_source_timestamp(
                        v, header.as_of, "header.as_of", header.HasField("as_of")
                    )
                    v.raise_if_any()
                    as_of = timestamp_to_datetime(header.as_of)
                    # Run to its end even if the call is cancelled meanwhile, so that the
                    # session it opens (a transaction) is always known, and aborted below.
                    session = await self._runner.write(
                        self._service.begin_snapshot,
                        header.location_id,
                        as_of,
                        noted=opened.append,
                    )
                    first = False
                elif request.HasField("header"):
                    v.add("header", "only the first message may carry the header")
                v.check(
                    len(request.records) <= MAX_STOCK_UPDATES,
                    "records",
                    f"must hold at most {MAX_STOCK_UPDATES:,} records per message",
                )
                rows = snapshot_records(v, request.records, received)
                received += len(request.records)
                if v and session is not None:
                    # Refused: the transaction (on SQLite, the write lock) goes at once;
                    # the rest of the stream is read only to count its bad records.
                    await self._runner.run(session.abort)
                    session = None
                found += len(v.items)
                kept += v.items[: MAX_KEPT_VIOLATIONS - len(kept)]
                if rows and session is not None and not found:
                    await self._runner.run(session.add, rows)
            if found:
                raise InvalidArgument(kept, omitted=found - len(kept))
            if session is None:
                raise InvalidArgument([FieldViolation("header", "the stream carried no header")])
            if not complete:
                # The client cancelled the call (gRPC ends the stream alike either way),
                # or sent no complete: either way the snapshot may be partial.
                raise InvalidArgument(
                    [FieldViolation("complete", "the stream ended before a message set it")],
                    reason="SNAPSHOT_INCOMPLETE",
                )

            def note_commit(received: int) -> None:
                nonlocal committed
                committed = True
                audit_note(location_id=header.location_id, received=received)

            result = await self._runner.write(
                session.commit, noted=lambda result: note_commit(result.received)
            )
            return feed_pb2.ImportSnapshotResponse(
                location_id=header.location_id,
                as_of=header.as_of,
                received_count=result.received,
                applied_count=result.applied,
                stale_count=result.stale,
                zeroed_count=result.zeroed,
            )
        finally:
            if opened and not committed:
                # A bad record, a dropped stream or a cancelled call (even one cancelled
                # while the session was being opened): nothing is applied. Aborting twice
                # is harmless.
                await self._runner.run(opened[0].abort)

    async def GetFeedStatus(
        self, request: feed_pb2.GetFeedStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> feed_pb2.GetFeedStatusResponse:
        v = Violations()
        check_id(v, request.location_id, "location_id")
        v.raise_if_any()
        status = await self._runner.run(self._service.feed_status, request.location_id)
        return feed_pb2.GetFeedStatusResponse(status=status_to_proto(status))

    async def ListFeedStatus(
        self, request: feed_pb2.ListFeedStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> feed_pb2.ListFeedStatusResponse:
        v = Violations()
        paging = self._pages.read(v, request.page_size, request.page_token, "ListFeedStatus")
        v.raise_if_any()
        page, next_after = await self._runner.run(
            self._service.list_feed_status,
            after_id=paging.after,
            limit=paging.size,
            visible=principal().locations,
        )
        return feed_pb2.ListFeedStatusResponse(
            statuses=[status_to_proto(s) for s in page],
            next_page_token=self._pages.next_token(paging, next_after),
        )

    async def ExportStock(
        self, request: feed_pb2.ExportStockRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[feed_pb2.ExportStockResponse]:
        v = Violations()
        if request.location_id:
            check_id(v, request.location_id, "location_id")
        v.raise_if_any()
        who = principal()
        who.require_exposure(Exposure.EXACT)  # an export carries exact counts
        pages = self._service.export_stock(request.location_id or None, visible=who.locations)
        while True:
            page = await self._runner.run(next, pages, None)
            if page is None:
                return
            yield feed_pb2.ExportStockResponse(availabilities=[view_to_proto(v) for v in page])
