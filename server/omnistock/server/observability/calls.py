"""What every call leaves behind: a request id, metrics, a span and an access log line.

The interceptor layer asks ``CallObserver.method`` once per method, when it wraps the
handler, and then, per call, ``begin`` (before anything else) and ``Call.end`` (in its
``finally``). What is switched off costs nothing per call; the request id is always on:
taken from the caller's ``x-request-id`` metadata when it is a sane one (printable, no
spaces, at most 128 characters), else made (a per-process prefix and a counter), and
returned in the trailing metadata of every answer, errors included.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from omnistock.server.domain.security import Principal
from omnistock.server.observability.logs import REQUEST_ID
from omnistock.server.observability.metrics import RpcMetrics
from omnistock.server.observability.tracing import CALL_SPAN, incoming_context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID = 128
access_log = logging.getLogger("omnistock.access")


def _sane(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_REQUEST_ID
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


class CallObserver:
    """``metrics``: record call figures; ``tracer``: a span per call; ``access_log``: a line
    per call on the ``omnistock.access`` logger (INFO)."""

    def __init__(
        self,
        *,
        metrics: RpcMetrics | None = None,
        tracer: Tracer | None = None,
        access_log: bool = False,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.access_log = access_log
        # Made in each process (workers fork before building their server).
        self._prefix = os.urandom(4).hex() + "-"
        self._counter = itertools.count(1)

    def method(self, method: str, kind: str) -> MethodObserver:
        """``kind``: unary, client_stream, server_stream or bidi_stream."""
        return MethodObserver(self, method, kind)

    def new_request_id(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


class MethodObserver:
    __slots__ = ("_observer", "_record", "method")

    def __init__(self, observer: CallObserver, method: str, kind: str) -> None:
        self._observer = observer
        self.method = method
        self._record: Callable[[grpc.StatusCode, float], None] | None = (
            observer.metrics.recorder(method, kind) if observer.metrics is not None else None
        )

    def begin(self, context: Any, metadata: Iterable[tuple[str, Any]] | None) -> Call:
        request_id = ""
        for key, value in metadata or ():
            if key == REQUEST_ID_KEY:
                if _sane(value):
                    request_id = value
                break
        if not request_id:
            request_id = self._observer.new_request_id()
        REQUEST_ID.set(request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        call = Call(self, request_id)
        tracer = self._observer.tracer
        if tracer is not None:
            service, _, name = self.method.strip("/").partition("/")
            call.span = tracer.start_span(
                self.method.strip("/"),
                context=incoming_context(metadata),
                kind=SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": name,
                    "omnistock.request_id": request_id,
                },
            )
            CALL_SPAN.set(call.span)
        return call


class Call:
    __slots__ = ("_method", "request_id", "span", "started")

    def __init__(self, method: MethodObserver, request_id: str) -> None:
        self._method = method
        self.request_id = request_id
        self.span: Any = None
        self.started = time.perf_counter()

    def status(self, status: grpc.Status) -> grpc.Status:
        """``status`` with the request id added to its trailing metadata (an abort sends
        the status's metadata in place of what was set before)."""
        return _Status(
            status.code,
            status.details,
            (*(status.trailing_metadata or ()), (REQUEST_ID_KEY, self.request_id)),
        )

    def end(self, code: grpc.StatusCode, who: Principal | None) -> None:
        seconds = time.perf_counter() - self.started
        method = self._method
        if method._record is not None:
            method._record(code, seconds)
        if self.span is not None:
            self.span.set_attribute("rpc.grpc.status_code", code.value[0])
            if who is not None:
                self.span.set_attribute("omnistock.principal", who.name)
            if code is not grpc.StatusCode.OK:
                self.span.set_status(Status(StatusCode.ERROR, code.name))
            self.span.end()
        if method._observer.access_log:
            principal = who.name if who is not None else "-"
            access_log.info(
                "%s %s %s %.2fms request_id=%s",
                method.method,
                principal,
                code.name,
                seconds * 1000,
                self.request_id,
                extra={
                    "access": {
                        "method": method.method,
                        "principal": principal,
                        "key_id": who.key_id if who is not None else "",
                        "status": code.name,
                        "latency_ms": round(seconds * 1000, 3),
                    },
                    "request_id": self.request_id,
                },
            )


class _Status(grpc.Status):
    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
