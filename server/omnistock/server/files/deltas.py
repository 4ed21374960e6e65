"""Delta imports: the file's lines in batches over one StreamDeltas call.

The SDK reads the batches on a gRPC thread while this one reads the acks, one
per batch, in order. Each batch in flight keeps its lines, so that a reject
(an index in its batch) is written against its line of the file; at most
MAX_IN_FLIGHT batches are out at a time, which keeps memory constant. Lines
rejected before sending travel with the next batch, so the rejects file comes
out in line order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp
from omnistock.client import (
    ApiError,
    CancelledError,
    Client,
    DeadlineExceededError,
    DeltaRecord,
    InternalError,
    StreamDeltasResponse,
    UnavailableError,
    UnknownError,
)
from omnistock.server.files.current import CurrentStock
from omnistock.server.files.formats import Format, Record, Reject
from omnistock.server.files.lines import Line
from omnistock.server.files.reader import FeedReader
from omnistock.server.files.rejects import RejectsWriter
from omnistock.server.files.report import describe_error

DEFAULT_BATCH_SIZE = 1_000
MAX_IN_FLIGHT = 4


@dataclass(slots=True)
class DeltaTotals:
    applied: int = 0
    stale: int = 0
    batches: int = 0
    skipped: int = 0  # lines not applied because the import stopped before them


@dataclass(slots=True)
class _Batch:
    lines: list[Line]  # of the records sent, by their index in the batch
    local: list[Reject] = field(default_factory=list)  # rejected before sending


# Errors after which the server may have applied a batch it did not answer for.
UNCERTAIN = (UnavailableError, DeadlineExceededError, CancelledError, InternalError, UnknownError)


def _message(record: Record) -> DeltaRecord:
    stamp = Timestamp()
    if record.source_updated_at is not None:
        stamp.FromDatetime(record.source_updated_at)
    message = DeltaRecord(location_id=record.location_id, sku=record.sku, source_updated_at=stamp)
    if record.adjustment is not None:
        message.adjustment = record.adjustment
    else:
        message.on_hand = record.on_hand or 0
    if record.safety_stock is not None:
        message.safety_stock = record.safety_stock
    if record.source_sequence is not None:
        message.source_sequence = record.source_sequence
    return message


class _Batches:
    """Iterated on the gRPC thread; ack(), close() and stopped() are called on the main one.

    The lines read but not yet sent are kept here (``_pending``), and taken from the
    file under ``_reading``, so that once the call has failed the main thread can
    account for every line: those in flight, those pending, and the rest of the file.
    """

    def __init__(self, items: Iterator[Record | Reject], rejects: RejectsWriter, size: int) -> None:
        self._items = items
        self._rejects = rejects
        self._size = size
        self._changed = threading.Condition()
        self._reading = threading.Lock()
        self._in_flight: deque[_Batch] = deque()
        self._records: list[DeltaRecord] = []
        self._pending = _Batch([])
        self._closed = False

    def __iter__(self) -> Iterator[list[DeltaRecord]]:
        while True:
            with self._reading:
                if self._closed:
                    return
                item = next(self._items, None)
                if item is not None:
                    self._take(item)
            full = len(self._records) >= self._size or len(self._pending.local) >= self._size
            if item is not None and not full:
                continue
            if self._records:
                records = self._send()
                if records is None:
                    return
                yield records
            elif self._pending.local and not self._write_when_idle():
                return
            if item is None:
                return

    def _take(self, item: Record | Reject) -> None:
        with self._changed:
            if isinstance(item, Reject):
                self._pending.local.append(item)
            else:
                self._records.append(_message(item))
                self._pending.lines.append(item.line)

    def _send(self) -> list[DeltaRecord] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._closed or len(self._in_flight) < MAX_IN_FLIGHT)
            if self._closed:
                return None
            self._in_flight.append(self._pending)
            records, self._records, self._pending = self._records, [], _Batch([])
            return records

    def _write_when_idle(self) -> bool:
        """Write rejects once every batch sent before them has been answered."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or not self._in_flight)
            if self._closed:
                return False
            for reject in self._pending.local:
                self._rejects.write(reject.line, reject.reason)
            self._pending.local = []
            return True

    def ack(self, response: StreamDeltasResponse) -> None:
        with self._changed:
            if not self._in_flight:
                raise RuntimeError(f"an answer to batch {response.batch_id!r} that was not sent")
            batch = self._in_flight[0]
            found = [(reject.line, reject.reason) for reject in batch.local]
            for r in response.rejects:
                if 0 <= r.index < len(batch.lines):
                    found.append((batch.lines[r.index], f"{r.reason}: {r.description or r.field}"))
            for line, reason in sorted(found, key=lambda pair: pair[0].start):
                self._rejects.write(line, reason)
            self._in_flight.popleft()
            self._changed.notify_all()

    def close(self) -> None:
        """Stop the sending side (it may be waiting for room) once the call is over."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def stopped(self, error: ApiError, rest: Iterator[Record | Reject]) -> int:
        """After the call failed: write every line not applied to the rejects file, with
        why; ``rest`` is the file after the lines read so far. Returns the lines skipped."""
        self.close()
        problem = describe_error(error)
        if isinstance(error, UNCERTAIN):
            unanswered = f"unconfirmed: the import stopped before the server answered: {problem}"
        else:
            unanswered = f"not applied: the import stopped: {problem}"
        skipped_reason = f"skipped: the import stopped: {problem}"
        with self._reading, self._changed:  # the gRPC thread no longer reads the file
            found = [(line, unanswered) for batch in self._in_flight for line in batch.lines]
            found += [
                (reject.line, reject.reason) for batch in self._in_flight for reject in batch.local
            ]
            found += [(line, skipped_reason) for line in self._pending.lines]
            found += [(reject.line, reject.reason) for reject in self._pending.local]
            self._in_flight.clear()
            self._pending, self._records = _Batch([]), []
        skipped = sum(1 for _, reason in found if reason in (unanswered, skipped_reason))
        for line, reason in sorted(found, key=lambda pair: pair[0].start):
            self._rejects.write(line, reason)
        for item in rest:
            if isinstance(item, Reject):
                self._rejects.write(item.line, item.reason)
            else:
                self._rejects.write(item.line, skipped_reason)
                skipped += 1
        return skipped


class DeltaImporter:
    def __init__(
        self,
        client: Client,
        reader: FeedReader,
        rejects: RejectsWriter,
        *,
        batch_size: int | None = None,
    ) -> None:
        self._client = client
        self._reader = reader
        self._rejects = rejects
        self._batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.totals = DeltaTotals()

    def run(self) -> DeltaTotals:
        lines = self._reader.items()
        items = lines
        if self._reader.settings.format is Format.GOOGLE_LOCAL:
            items = CurrentStock(self._client).resolve(lines)
        batches = _Batches(items, self._rejects, self._batch_size)
        try:
            for response in self._client.stream_deltas(batches):
                batches.ack(response)
                self.totals.applied += response.applied_count
                self.totals.stale += response.stale_count
                self.totals.batches += 1
        except ApiError as error:
            # The lines read so far went through ``items``; the rest is read plain.
            self.totals.skipped += batches.stopped(error, lines)
            raise
        finally:
            batches.close()
        return self.totals
