"""Per-call settings: which calls are retried, retry= per call, one deadline across
retries, the user agent and trace context, pagers, and the whole request as request=."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc_testing
import omnistock.client as sdk
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from omnistock.client import _tracing
from omnistock.client.testing import LocalServer
from omnistock.v1 import location_pb2

LOCATIONS = location_pb2.DESCRIPTOR.services_by_name["LocationService"]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class Scripted:
    """A client on a grpc_testing channel, its call run on a thread."""

    def __init__(self, call: Callable[[sdk.Client], Any], **options: Any) -> None:
        self.channel = grpc_testing.channel([LOCATIONS.file], grpc_testing.strict_real_time())
        self.client = sdk.Client("scripted", channel=self.channel, **options)
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(call,))
        self.thread.start()

    def _run(self, call: Callable[[sdk.Client], Any]) -> None:
        try:
            self.outcome["result"] = call(self.client)
        except BaseException as error:
            self.outcome["error"] = error

    def answer(self, method: str, code: grpc.StatusCode, response: Any = None, **kw: Any) -> Any:
        metadata, _, rpc = self.channel.take_unary_unary(LOCATIONS.methods_by_name[method])
        rpc.terminate(response, kw.get("trailing", ()), code, "scripted")
        return metadata

    def result(self) -> tuple[Any, BaseException | None]:
        self.thread.join(5)
        assert not self.thread.is_alive(), "the call is still waiting for an answer"
        return self.outcome.get("result"), self.outcome.get("error")


FAST = sdk.Retry(attempts=3, initial=0.01, maximum=0.01)
FOUND = location_pb2.GetLocationResponse(location=location_pb2.Location(id="A"))


def test_a_read_is_retried_on_unavailable() -> None:
    run = Scripted(lambda c: c.get_location("A"), retry=FAST)
    run.answer("GetLocation", UNAVAILABLE)
    run.answer("GetLocation", grpc.StatusCode.OK, FOUND)
    result, error = run.result()
    assert error is None and result.id == "A"


def test_a_write_is_not_retried_unless_the_call_asks() -> None:
    upsert = location_pb2.UpsertLocationsResponse()
    run = Scripted(lambda c: c.upsert_locations([]), retry=FAST)
    run.answer("UpsertLocations", UNAVAILABLE)
    assert isinstance(run.result()[1], sdk.UnavailableError)

    run = Scripted(lambda c: c.upsert_locations([], retry=FAST))
    run.answer("UpsertLocations", UNAVAILABLE)
    run.answer("UpsertLocations", grpc.StatusCode.OK, upsert)
    assert run.result() == ([], None)


def test_retry_per_call_turns_a_reads_retries_off() -> None:
    run = Scripted(lambda c: c.get_location("A", retry=sdk.Retry(attempts=1)), retry=FAST)
    run.answer("GetLocation", UNAVAILABLE)
    assert isinstance(run.result()[1], sdk.UnavailableError)


def test_the_timeout_bounds_the_call_with_its_retries() -> None:
    """A server asking to wait 2 s before a retry, with 0.5 s left: the call fails at
    once rather than wait past its deadline."""
    status = status_pb2.Status(code=UNAVAILABLE.value[0], message="busy")
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2)))
    status.details.append(detail)
    trailing = (("grpc-status-details-bin", status.SerializeToString()),)
    started = time.monotonic()
    run = Scripted(lambda c: c.get_location("A", timeout=0.5))
    run.answer("GetLocation", UNAVAILABLE, trailing=trailing)
    _, error = run.result()
    assert isinstance(error, sdk.UnavailableError)
    assert time.monotonic() - started < 1.5


def test_trace_context_goes_into_the_metadata_when_opentelemetry_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    class Propagate:
        @staticmethod
        def inject(carrier: dict[str, str]) -> None:
            carrier["traceparent"] = traceparent

    run = Scripted(lambda c: c.get_location("A"))
    assert ("traceparent", traceparent) not in run.answer("GetLocation", grpc.StatusCode.OK, FOUND)
    run.result()

    monkeypatch.setattr(_tracing, "_propagate", Propagate)
    run = Scripted(lambda c: c.get_location("A"))
    assert ("traceparent", traceparent) in run.answer("GetLocation", grpc.StatusCode.OK, FOUND)
    run.result()


def test_the_user_agent_reaches_the_server() -> None:
    seen: list[str] = []

    def get_location(request: Any, context: grpc.ServicerContext) -> Any:
        seen.extend(v for k, v in context.invocation_metadata() if k == "user-agent")
        return FOUND

    handler = grpc.method_handlers_generic_handler(
        "omnistock.v1.LocationService",
        {
            "GetLocation": grpc.unary_unary_rpc_method_handler(
                get_location,
                request_deserializer=location_pb2.GetLocationRequest.FromString,
                response_serializer=location_pb2.GetLocationResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with sdk.Client(f"127.0.0.1:{port}") as client:
            assert client.get_location("A").id == "A"
    finally:
        server.stop(None)
    assert seen and seen[0].startswith(f"omnistock-python/{sdk.__version__} ")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def test_a_pager_gives_pages_and_the_token_to_resume_from(server: LocalServer) -> None:
    with sdk.Client(server.target) as client:
        pager = client.list_locations(page_size=3)
        first = next(pager.pages)
        assert [loc.id for loc in first.locations] == ["NL-AMS-01", "NL-RTM-01", "NL-UTR-01"]
        assert pager.next_page_token
        rest = client.list_locations(page_size=3, page_token=pager.next_page_token)
        assert [loc.id for loc in rest] == ["NL-WH-01"]
        assert rest.next_page_token == ""
        everything = client.list_locations(page_size=1)
        assert len(list(everything.pages)) == 4


def test_the_whole_request_or_the_arguments_not_both(server: LocalServer) -> None:
    with sdk.Client(server.target) as client:
        request = location_pb2.GetLocationRequest(location_id="NL-AMS-01")
        assert client.get_location(request=request).id == "NL-AMS-01"
        with pytest.raises(ValueError, match="not both"):
            client.get_location("NL-AMS-01", request=request)
        with pytest.raises(TypeError, match="needs location_id"):
            client.get_location()


def test_timestamp_makes_the_time_a_stock_update_needs() -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    update = sdk.StockUpdate(source_updated_at=sdk.timestamp(at))
    assert update.source_updated_at.ToDatetime(tzinfo=UTC) == at
    with pytest.raises(ValueError, match="aware"):
        sdk.timestamp(datetime(2026, 3, 29, 1, 30))
