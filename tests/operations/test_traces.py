"""Traces: with an OTLP endpoint, each call is a span (continuing the caller's
traceparent) with its database work under it, sent to the collector."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from omnistock.client import Client
from omnistock.server.config import ServerConfig
from omnistock.server.testing import InProcessServer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

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


def test_calls_and_their_database_work_are_spans_sent_over_otlp(tmp_path: Path) -> None:
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    try:
        config = ServerConfig(
            listen="127.0.0.1:0",
            insecure=True,
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
            otlp_endpoint=f"http://127.0.0.1:{port}",
        )
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        with (
            InProcessServer(config) as server,
            Client(server.target, metadata=[("traceparent", traceparent)]) as client,
        ):
            list(client.list_locations())
        # Stopping the server sends what is left.
    finally:
        otlp.stop(None)
    calls = [s for s in collector.spans if s.name == "omnistock.v1.LocationService/ListLocations"]
    assert len(calls) == 1
    call = calls[0]
    assert call.trace_id.hex() == TRACE_ID and call.parent_span_id.hex() == PARENT_ID
    attributes = {a.key: a.value for a in call.attributes}
    assert attributes["rpc.grpc.status_code"].int_value == 0
    assert attributes["omnistock.request_id"].string_value
    database = [s for s in collector.spans if s.parent_span_id == call.span_id]
    assert database and all(s.name.startswith("db ") for s in database)


def test_no_tracing_unless_an_endpoint_is_configured(tmp_path: Path) -> None:
    with InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}") as server:
        assert server.server is not None
        assert server.server.tracing is None and server.server.runner.tracer is None
