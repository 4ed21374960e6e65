"""The SDK turns each status code into its exception class, with the google.rpc details.

The server side is scripted with grpc_testing, so every code and detail can be
played without a network.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import grpc_testing
import omnistock.client as sdk
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from omnistock.v1 import availability_pb2, location_pb2

LOCATIONS = location_pb2.DESCRIPTOR.services_by_name["LocationService"]
AVAILABILITY = availability_pb2.DESCRIPTOR.services_by_name["AvailabilityService"]


def _details(code: grpc.StatusCode, message: str, *details: Any) -> tuple[tuple[str, bytes], ...]:
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def _play(
    call: Callable[[sdk.Client], Any],
    method: Any,
    *,
    code: grpc.StatusCode,
    message: str = "scripted",
    trailing: tuple[tuple[str, bytes], ...] = (),
    response: Any = None,
) -> tuple[Any, BaseException | None, Any]:
    channel = grpc_testing.channel(
        [LOCATIONS.file, AVAILABILITY.file], grpc_testing.strict_real_time()
    )
    # One scripted answer per call: no retries (tests/client/test_call_settings.py has them).
    client = sdk.Client("scripted", channel=channel, retry=sdk.Retry(attempts=1))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call(client)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    metadata, request, rpc = channel.take_unary_unary(method)
    rpc.terminate(response, trailing, code, message)
    thread.join(5)
    return outcome.get("result"), outcome.get("error"), (metadata, request)


def test_invalid_argument_carries_reason_and_field_violations() -> None:
    trailing = _details(
        grpc.StatusCode.INVALID_ARGUMENT,
        "sku: bad",
        error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="omnistock"),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="sku", description="bad")
            ]
        ),
    )
    _, error, _ = _play(
        lambda c: c.get_availability("x y"),
        AVAILABILITY.methods_by_name["GetAvailability"],
        code=grpc.StatusCode.INVALID_ARGUMENT,
        message="sku: bad",
        trailing=trailing,
    )
    assert isinstance(error, sdk.InvalidArgumentError)
    assert error.reason == "INVALID_ARGUMENT"
    assert error.field_violations == (sdk.FieldViolation("sku", "bad"),)
    assert str(error) == "INVALID_ARGUMENT: sku: bad [INVALID_ARGUMENT]"


def test_resource_exhausted_carries_retry_after() -> None:
    trailing = _details(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "slow down",
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2)),
    )
    _, error, _ = _play(
        lambda c: c.get_location("A"),
        LOCATIONS.methods_by_name["GetLocation"],
        code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        trailing=trailing,
    )
    assert isinstance(error, sdk.ResourceExhaustedError)
    assert error.retry_after is not None and error.retry_after.total_seconds() == 2


def test_failed_precondition_carries_violations() -> None:
    trailing = _details(
        grpc.StatusCode.FAILED_PRECONDITION,
        "not enough",
        error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type="INSUFFICIENT_STOCK",
                    subject="SKU-1",
                    description="requested 3, available 1",
                )
            ]
        ),
    )
    _, error, _ = _play(
        lambda c: c.get_location("A"),
        LOCATIONS.methods_by_name["GetLocation"],
        code=grpc.StatusCode.FAILED_PRECONDITION,
        trailing=trailing,
    )
    assert isinstance(error, sdk.FailedPreconditionError)
    assert error.precondition_violations[0].subject == "SKU-1"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, sdk.NotFoundError),
        (grpc.StatusCode.UNAUTHENTICATED, sdk.UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, sdk.PermissionDeniedError),
        (grpc.StatusCode.UNAVAILABLE, sdk.UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, sdk.DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, sdk.InternalError),
        (grpc.StatusCode.DATA_LOSS, sdk.InternalError),
        (grpc.StatusCode.ABORTED, sdk.AbortedError),
        (grpc.StatusCode.UNKNOWN, sdk.UnknownError),
    ],
)
def test_each_status_code_raises_its_class_without_details(
    code: grpc.StatusCode, cls: type[sdk.ApiError]
) -> None:
    _, error, _ = _play(
        lambda c: c.get_location("A"), LOCATIONS.methods_by_name["GetLocation"], code=code
    )
    assert type(error) is cls
    assert isinstance(error, sdk.OmnistockError)
    assert error.code == code
    assert error.reason == "" and error.field_violations == ()


def test_client_metadata_and_call_metadata_are_both_sent() -> None:
    channel = grpc_testing.channel([LOCATIONS.file], grpc_testing.strict_real_time())
    client = sdk.Client("scripted", channel=channel, metadata=[("x-app", "kiosk")])
    done = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        result["location"] = client.get_location("A", metadata=[("x-request-id", "42")])
        done.set()

    threading.Thread(target=run).start()
    metadata, request, rpc = channel.take_unary_unary(LOCATIONS.methods_by_name["GetLocation"])
    rpc.terminate(
        location_pb2.GetLocationResponse(location=location_pb2.Location(id="A")),
        (),
        grpc.StatusCode.OK,
        "",
    )
    assert done.wait(5)
    assert request.location_id == "A"
    assert ("x-app", "kiosk") in metadata and ("x-request-id", "42") in metadata
    assert result["location"].id == "A"
