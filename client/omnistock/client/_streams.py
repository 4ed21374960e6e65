"""Request streams that keep the caller's exceptions, for both clients.

gRPC reads a client-streaming call's requests itself (the sync API on a thread of its
own, grpc.aio in a task) and swallows what the iterator raises: the sync call fails
UNKNOWN "Exception iterating requests!", the asyncio one with asyncio.CancelledError.
``RequestStream`` stands between: it keeps the exception (a failing generator, or a
record the SDK could not encode), ends the stream, and the client raises the exception
itself once the call is over.

How the stream ends is the method's rule. A snapshot is all or nothing, so ``CANCEL``
cancels the call; the stream's last message, the one that says the snapshot is complete,
was never sent, so the server commits nothing either way. Delta batches stand alone, so
``CLOSE`` closes the stream as if it had ended: the server applies and acknowledges
every batch sent before, and then the exception is raised.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import grpc
from omnistock.client._exceptions import from_rpc_error

Request = TypeVar("Request")


class OnError(enum.Enum):
    CANCEL = "cancel"
    CLOSE = "close"


class RequestStream(Generic[Request]):
    """The requests of one call, read from ``requests`` on gRPC's behalf.

    Give it to the stub, then ``attach()`` the call the stub returned; once the call is
    over, ``failure()`` says what to raise.
    """

    def __init__(self, requests: Iterable[Request], *, on_error: OnError, note: str) -> None:
        self._requests = iter(requests)
        self._on_error = on_error
        self._note = note
        self._call: Any = None
        self._attached = threading.Event()
        self.error: BaseException | None = None
        self.sent = 0

    def __iter__(self) -> Iterator[Request]:
        return self

    def __next__(self) -> Request:
        if self.error is not None:
            raise StopIteration
        try:
            request = next(self._requests)
        except StopIteration:
            raise
        except BaseException as error:  # the caller's, raised again on the caller's side
            self.error = error
            if self._on_error is OnError.CANCEL:
                # The sync API may ask for the first request before the stub has returned
                # the call; attach() comes right after.
                self._attached.wait()
                if self._call is not None:
                    self._call.cancel()
            raise StopIteration from None
        self.sent += 1
        return request

    def attach(self, call: Any) -> None:
        """The call the stub made of this stream (None if the stub raised)."""
        self._call = call
        self._attached.set()

    def failure(self, error: BaseException) -> BaseException:
        """What a call that failed with ``error`` (an RpcError, a cancellation) raises:
        the kept exception when the stream's own cancel ended the call, else the
        server's error, typed."""
        if self.error is not None and _is_cancellation(error):
            return self._noted(self.error)
        if isinstance(error, grpc.RpcError):
            return from_rpc_error(error)
        return error

    def failure_after_end(self) -> BaseException | None:
        """What a call that ended OK raises: the kept exception, when the stream closed
        early for it."""
        return None if self.error is None else self._noted(self.error)

    def _noted(self, error: BaseException) -> BaseException:
        error.add_note(self._note.format(sent=self.sent))
        return error


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, grpc.FutureCancelledError | asyncio.CancelledError):
        return True
    code = getattr(error, "code", None)
    return callable(code) and code() is grpc.StatusCode.CANCELLED


def start(method: Any, stream: RequestStream[Any], **options: Any) -> Any:
    """``method(stream, **options)``, the call attached to the stream."""
    call = None
    try:
        call = method(stream, **options)
        return call
    finally:
        stream.attach(call)


STREAM_NOTE = "the call was cancelled on this error: {sent} message(s) were sent before it"
SNAPSHOT_NOTE = "import_snapshot cancelled the call on this error: the server wrote nothing"
DELTAS_NOTE = (
    "stream_deltas closed the stream on this error: the {sent} batch(es) sent before it "
    "were applied and acknowledged, and nothing later was sent"
)


def task_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just the call)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
