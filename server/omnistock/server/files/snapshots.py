"""Snapshot imports: one ImportSnapshot call per location, streamed as the file is read.

The lines of a location must be together (a group). Each group is sent while
it is read, so memory stays constant whatever the file's size. A snapshot is
all or nothing, and a sku missing from it drops to zero, so a group with a bad
line must not be applied: on the first bad line the record stream raises
SnapshotAborted, the SDK cancels the call (the server applies nothing) and
raises it again here. Every
line of that group then goes to the rejects file: those already sent are read
again from the file, the rest as they come.

The SDK reads the record stream on a gRPC thread while this one waits for the
answer; the stream's lock and close() make sure that thread has let go of the
file before this one reads on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from omnistock.client import (
    ApiError,
    Client,
    FailedPreconditionError,
    ImportSnapshotResponse,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    SnapshotRecord,
)
from omnistock.server.files.formats import Record, Reject
from omnistock.server.files.lines import Line
from omnistock.server.files.reader import FeedReader
from omnistock.server.files.rejects import RejectsWriter
from omnistock.server.files.report import describe_error

SKIPPED = "skipped: snapshot aborted"
# Errors that refuse one location's snapshot; the import goes on with the next.
REFUSALS = (
    InvalidArgumentError,
    NotFoundError,
    FailedPreconditionError,
    OutOfRangeError,
    PermissionDeniedError,
)

Item = Record | Reject


class SnapshotAborted(Exception):
    """Raised in a snapshot's record stream to cancel the call: nothing is applied."""


@dataclass(slots=True)
class GroupResult:
    location_id: str
    as_of: datetime | None = None
    response: ImportSnapshotResponse | None = None
    skipped: int = 0  # lines not applied because their snapshot was not
    rejected: int = 0  # lines of the group rejected for a reason of their own
    problem: str = ""  # why the snapshot was not applied
    refused: bool = False  # by the server (an error), rather than for a bad line


class Peekable:
    def __init__(self, items: Iterator[Item]) -> None:
        self._items = items
        self._next: Item | None = None
        self._peeked = False

    def peek(self) -> Item | None:
        if not self._peeked:
            self._next, self._peeked = next(self._items, None), True
        return self._next

    def pop(self) -> Item | None:
        item = self.peek()
        self._peeked = False
        return item


class _GroupStream:
    """The records of one group, for import_snapshot; ends where the group does."""

    def __init__(
        self, first: Record, items: Peekable, done: set[str], reappeared: Callable[[Item], None]
    ) -> None:
        self.location = first.location_id
        self.aborted: Reject | None = None
        self.failed: Exception | None = None
        self._pending: Record | None = first
        self._items = items
        self._done = done
        self._reappeared = reappeared
        self._lock = threading.Lock()
        self._closed = False

    def __iter__(self) -> _GroupStream:
        return self

    def __next__(self) -> SnapshotRecord:
        with self._lock:
            if self._closed:
                raise StopIteration
            try:
                return self._next()
            except (StopIteration, SnapshotAborted):
                self._closed = True
                raise
            except Exception as error:  # a bug: kept to be raised on the main thread
                self._closed, self.failed = True, error
                raise

    def _next(self) -> SnapshotRecord:
        if self._pending is not None:
            record, self._pending = self._pending, None
            return _message(record)
        while True:
            item = self._items.peek()
            if item is None:
                raise StopIteration
            other = item.location_id
            if other and other != self.location:
                if other not in self._done:
                    raise StopIteration  # the next group starts here
                self._items.pop()
                self._reappeared(item)
                continue
            if isinstance(item, Reject):  # left in place for the main thread
                self.aborted = item
                raise SnapshotAborted(f"line {item.line.number}: {item.reason}")
            self._items.pop()
            return _message(item)

    def close(self) -> None:
        """After this returns, the gRPC thread no longer touches the file."""
        with self._lock:
            self._closed = True


def _message(record: Record) -> SnapshotRecord:
    message = SnapshotRecord(sku=record.sku, on_hand=record.on_hand or 0)
    if record.safety_stock is not None:
        message.safety_stock = record.safety_stock
    return message


class SnapshotImporter:
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
        self._settings = reader.settings
        self._rejects = rejects
        self._batch_size = batch_size
        self._done: set[str] = set()
        self.results: list[GroupResult] = []

    def run(self) -> list[GroupResult]:
        items = Peekable(self._reader.items())
        while (item := items.pop()) is not None:
            location = item.location_id
            if isinstance(item, Reject) and not location:
                self._rejects.write(item.line, item.reason)
            elif location in self._done:
                self._reappeared(item)
            else:
                self._done.add(location)
                result = GroupResult(location)
                self.results.append(result)
                self._group(item, items, result)
        return self.results

    def _reappeared(self, item: Item) -> None:
        reason = (
            item.reason
            if isinstance(item, Reject)
            else f"location {item.location_id} appeared earlier in the file and its snapshot"
            " was already sent: a location's lines must be together"
        )
        self._rejects.write(item.line, reason)

    def _group(self, first: Item, items: Peekable, result: GroupResult) -> None:
        if isinstance(first, Reject):
            result.problem = f"line {first.line.number} was rejected"
            self._rejects.write(first.line, first.reason)
            result.rejected += 1
            self._skip_rest(items, result, SKIPPED)
            return
        result.as_of = self._settings.as_of or first.source_updated_at or self._settings.now
        stream = _GroupStream(first, items, self._done, self._reappeared)
        try:
            result.response = self._send(result.location_id, result.as_of, stream)
        except (ApiError, SnapshotAborted) as error:  # the SDK raises the abort itself
            stream.close()
            if stream.failed is not None:
                raise stream.failed from error
            if stream.aborted is not None:
                result.problem = f"line {stream.aborted.line.number} was rejected"
                reason = SKIPPED
            elif isinstance(error, REFUSALS):
                result.problem, result.refused = describe_error(error), True
                reason = f"skipped: snapshot refused: {result.problem}"
            else:
                raise
            stop = items.peek()
            self._skip_sent(first.line, None if stop is None else stop.line.start, reason, result)
            self._skip_rest(items, result, reason)
        finally:
            stream.close()

    def _send(self, location: str, as_of: datetime, stream: _GroupStream) -> ImportSnapshotResponse:
        if self._batch_size is None:  # the SDK's default
            return self._client.import_snapshot(location, as_of, stream)
        return self._client.import_snapshot(location, as_of, stream, batch_size=self._batch_size)

    def _skip_sent(self, first: Line, stop: int | None, reason: str, result: GroupResult) -> None:
        """The group's lines that were sent before the snapshot was abandoned."""
        for item in self._reader.reread(first):
            if stop is not None and item.line.start >= stop:
                return
            if item.location_id == result.location_id:
                self._rejects.write(item.line, reason)
                result.skipped += 1

    def _skip_rest(self, items: Peekable, result: GroupResult, reason: str) -> None:
        """The group's lines after the point where its snapshot was abandoned."""
        while (item := items.peek()) is not None:
            other = item.location_id
            if other and other != result.location_id:
                if other not in self._done:
                    return
                items.pop()
                self._reappeared(item)
                continue
            items.pop()
            if isinstance(item, Reject):
                self._rejects.write(item.line, item.reason)
                result.rejected += 1
            else:
                self._rejects.write(item.line, reason)
                result.skipped += 1
