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
from omnistock.client import Client, DeltaRecord, StreamDeltasResponse
from omnistock.server.files.formats import Record, Reject
from omnistock.server.files.lines import Line
from omnistock.server.files.reader import FeedReader
from omnistock.server.files.rejects import RejectsWriter

DEFAULT_BATCH_SIZE = 1_000
MAX_IN_FLIGHT = 4


@dataclass(slots=True)
class DeltaTotals:
    applied: int = 0
    stale: int = 0
    batches: int = 0


@dataclass(slots=True)
class _Batch:
    lines: list[Line]  # of the records sent, by their index in the batch
    local: list[Reject] = field(default_factory=list)  # rejected before sending


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
    """Iterated on the gRPC thread; ack() and close() are called on the main thread."""

    def __init__(self, items: Iterator[Record | Reject], rejects: RejectsWriter, size: int) -> None:
        self._items = items
        self._rejects = rejects
        self._size = size
        self._changed = threading.Condition()
        self._in_flight: deque[_Batch] = deque()
        self._closed = False

    def __iter__(self) -> Iterator[list[DeltaRecord]]:
        records: list[DeltaRecord] = []
        lines: list[Line] = []
        local: list[Reject] = []
        for item in self._items:
            if isinstance(item, Reject):
                local.append(item)
            else:
                records.append(_message(item))
                lines.append(item.line)
            if len(records) < self._size and len(local) < self._size:
                continue
            if records:
                if not self._send(_Batch(lines, local)):
                    return
                yield records
            elif not self._write_when_idle(local):
                return
            records, lines, local = [], [], []
        if records:
            if self._send(_Batch(lines, local)):
                yield records
        elif local:
            self._write_when_idle(local)

    def _send(self, batch: _Batch) -> bool:
        with self._changed:
            self._changed.wait_for(lambda: self._closed or len(self._in_flight) < MAX_IN_FLIGHT)
            if self._closed:
                return False
            self._in_flight.append(batch)
            return True

    def _write_when_idle(self, local: list[Reject]) -> bool:
        """Write rejects once every batch sent before them has been answered."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or not self._in_flight)
            if self._closed:
                return False
            for reject in local:
                self._rejects.write(reject.line, reject.reason)
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
        batches = _Batches(self._reader.items(), self._rejects, self._batch_size)
        try:
            for response in self._client.stream_deltas(batches):
                batches.ack(response)
                self.totals.applied += response.applied_count
                self.totals.stale += response.stale_count
                self.totals.batches += 1
        finally:
            batches.close()
        return self.totals
