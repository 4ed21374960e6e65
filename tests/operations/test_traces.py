"""Traces: with an OTLP endpoint, each call is a span (continuing the caller's
traceparent) with its database work under it, sent to the collector."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from omnistock.client import AsyncClient, Client
from omnistock.server.config import ServerConfig
from omnistock.server.testing import InProcessServer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[ServerConfig, Collector]]:
    """A server config that sends traces to a collector of the test's own."""
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    try:
        yield (
            ServerConfig(
                listen="127.0.0.1:0",
                insecure=True,
                database_url=f"sqlite:///{tmp_path / 'x.db'}",
                otlp_endpoint=f"http://127.0.0.1:{port}",
            ),
            collector,
        )
    finally:
        otlp.stop(None)


LIST_LOCATIONS = "omnistock.v1.LocationService/ListLocations"


def test_calls_and_their_database_work_are_spans_sent_over_otlp(
    traced: tuple[ServerConfig, Collector],
) -> None:
    config, collector = traced
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    with (
        InProcessServer(config) as server,
        Client(server.target, metadata=[("traceparent", traceparent)]) as client,
    ):
        list(client.list_locations())
    # Stopping the server sent what was left.
    calls = [s for s in collector.spans if s.name == LIST_LOCATIONS]
    assert len(calls) == 1
    call = calls[0]
    assert call.trace_id.hex() == TRACE_ID and call.parent_span_id.hex() == PARENT_ID
    attributes = {a.key: a.value for a in call.attributes}
    assert attributes["rpc.grpc.status_code"].int_value == 0
    assert attributes["omnistock.request_id"].string_value
    database = [s for s in collector.spans if s.parent_span_id == call.span_id]
    assert database and all(s.name.startswith("db ") for s in database)


def test_the_sdk_sends_the_callers_trace_context(traced: tuple[ServerConfig, Collector]) -> None:
    config, collector = traced
    tracer = TracerProvider().get_tracer("shop")
    with InProcessServer(config) as server:
        with Client(server.target) as client, tracer.start_as_current_span("product page") as page:
            list(client.list_locations())
        asyncio.run(_list(server.target, tracer))
        with Client(server.target) as client:  # outside a span: a trace of its own
            list(client.list_locations())
    calls = [s for s in collector.spans if s.name == LIST_LOCATIONS]
    assert len(calls) == 3
    assert calls[0].trace_id == page.get_span_context().trace_id.to_bytes(16, "big")
    assert calls[0].parent_span_id == page.get_span_context().span_id.to_bytes(8, "big")
    assert len({call.trace_id for call in calls}) == 3
    assert calls[2].parent_span_id == b""


async def _list(target: str, tracer: Tracer) -> None:
    async with AsyncClient(target) as client:
        with tracer.start_as_current_span("list"):
            [location async for location in client.list_locations()]


def test_no_tracing_unless_an_endpoint_is_configured(tmp_path: Path) -> None:
    with InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}") as server:
        assert server.server is not None
        assert server.server.tracing is None and server.server.runner.tracer is None
