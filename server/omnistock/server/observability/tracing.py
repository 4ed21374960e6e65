"""OpenTelemetry traces: a span for each call, and one for each piece of its database work.

Off unless an OTLP endpoint is configured (``--otlp-endpoint`` or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``): then spans go to it over OTLP/gRPC in batches, from a
background thread. A call's span continues the trace of an incoming W3C ``traceparent``
(and ``tracestate``) metadata entry. Off, nothing here runs on a call's path: the
interceptor layer and the database runner hold ``None`` and skip it.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICE_NAME = "omnistock"
_PROPAGATOR = TraceContextTextMapPropagator()
_CARRIED = ("traceparent", "tracestate")


class Tracing:
    """A tracer provider of the process's own (the global one is left alone, so tests and
    embedding programs keep theirs), exporting through ``processor``."""

    def __init__(self, processor: SpanProcessor) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("omnistock.server")

    @classmethod
    def otlp(cls, endpoint: str) -> Tracing:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        return cls(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=insecure)))

    def close(self) -> None:
        self.provider.shutdown()  # sends what is left


def incoming_context(metadata: Iterable[tuple[str, Any]] | None) -> Any:
    """The trace context a caller sent in its metadata (None when it sent none)."""
    carrier = {key: value for key, value in metadata or () if key in _CARRIED}
    return _PROPAGATOR.extract(carrier) if carrier else None


def current_span_context() -> trace.SpanContext:
    return trace.get_current_span().get_span_context()


# The span of the call being served (each call runs in a task of its own), for the spans
# of its database work to hang under.
CALL_SPAN: ContextVar[Span | None] = ContextVar("omnistock_call_span", default=None)


def database_span(tracer: Tracer, name: str) -> Any:
    """A span for one piece of database work, under the current call's span (a root span
    outside a call: background work)."""
    parent = CALL_SPAN.get()
    context = trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_as_current_span(
        name, context=context, kind=SpanKind.CLIENT, attributes={"db.operation.name": name}
    )
