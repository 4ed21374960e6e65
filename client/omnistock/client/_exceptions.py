"""Errors the SDK raises, one class per gRPC status code, carrying the google.rpc details.

OmnistockError
├── InvalidRecordError            a feed record the SDK cannot send (also a ValueError)
└── ApiError                      the server answered with a non-OK status
    ├── InvalidArgumentError      INVALID_ARGUMENT: see .field_violations
    ├── NotFoundError             NOT_FOUND: see .resource_names
    ├── AlreadyExistsError        ALREADY_EXISTS
    ├── FailedPreconditionError   FAILED_PRECONDITION: see .precondition_violations
    ├── AbortedError              ABORTED
    ├── OutOfRangeError           OUT_OF_RANGE
    ├── UnauthenticatedError      UNAUTHENTICATED
    ├── PermissionDeniedError     PERMISSION_DENIED
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED: see .retry_after
    ├── DeadlineExceededError     DEADLINE_EXCEEDED
    ├── CancelledError            CANCELLED
    ├── UnavailableError          UNAVAILABLE
    ├── UnimplementedError        UNIMPLEMENTED
    ├── InternalError             INTERNAL, DATA_LOSS
    └── UnknownError              UNKNOWN and anything else

try:
    client.get_location("NL-AMS-99")
except omnistock.client.NotFoundError as error:
    print(error.reason, error.resource_names)   # LOCATION_NOT_FOUND ['NL-AMS-99']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc import aio

_DETAILS_KEY = "grpc-status-details-bin"


class OmnistockError(Exception):
    """Base class of every error the SDK raises."""


class InvalidRecordError(OmnistockError, ValueError):
    """A feed record the SDK cannot send, raised before its batch leaves: a quantity that
    is not a whole number within int64 (2**63, NaN, 1.5), a naive datetime, an unknown
    field. The error it came from is its ``__cause__``.

    Attributes:
        batch: the batch's index in ``stream_deltas`` (None for a snapshot).
        index: the record's index: in the snapshot, counted across it (as the server's
            ``records[25]``), or in its batch.
        sku: the record's sku, when it has one.
        field: the field at fault, when known.
    """

    def __init__(
        self, problem: str, *, batch: int | None, index: int, sku: str, field: str
    ) -> None:
        self.batch = batch
        self.index = index
        self.sku = sku
        self.field = field
        where = f"records[{index}]" if batch is None else f"batches[{batch}].records[{index}]"
        named = f" (sku {shorten(sku)!r})" if sku else ""
        super().__init__(f"{where}{named}: {f'{field}: ' if field else ''}{problem}")


def shorten(text: str, limit: int = 80) -> str:
    """``text``, cut to ``limit`` characters with "..." when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, as a path such as ``items[3].sku``."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


class ApiError(OmnistockError):
    """The server answered with a non-OK status.

    Attributes:
        code: the gRPC status code.
        message: the server's message, safe to log.
        reason: the stable UPPER_SNAKE reason from ``google.rpc.ErrorInfo`` (or "").
        field_violations: from ``google.rpc.BadRequest``.
        precondition_violations: from ``google.rpc.PreconditionFailure``.
        resource_names: from ``google.rpc.ResourceInfo``.
        retry_after: from ``google.rpc.RetryInfo``, when the server says when to retry.
        not_shown: how many violations (or resource names) the server found but left out
            of the details, which it keeps within gRPC's 8 KiB limit on metadata
            (``ErrorInfo`` metadata ``not_shown``; 0 when all are listed).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        precondition_violations: tuple[PreconditionViolation, ...] = (),
        resource_names: tuple[str, ...] = (),
        retry_after: timedelta | None = None,
        not_shown: int = 0,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}
        self.field_violations = field_violations
        self.precondition_violations = precondition_violations
        self.resource_names = resource_names
        self.retry_after = retry_after
        self.not_shown = not_shown

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        return f"{text} [{self.reason}]" if self.reason else text


class InvalidArgumentError(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(ApiError):
    code = grpc.StatusCode.ABORTED


class OutOfRangeError(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnauthenticatedError(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(ApiError):
    code = grpc.StatusCode.CANCELLED


class UnavailableError(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class UnimplementedError(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ApiError):
    code = grpc.StatusCode.INTERNAL


class UnknownError(ApiError):
    code = grpc.StatusCode.UNKNOWN


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnauthenticatedError,
        PermissionDeniedError,
        ResourceExhaustedError,
        DeadlineExceededError,
        CancelledError,
        UnavailableError,
        UnimplementedError,
        InternalError,
        UnknownError,
    )
}
_BY_CODE[grpc.StatusCode.DATA_LOSS] = InternalError


def _is_call(error: grpc.RpcError) -> bool:
    """A failed call of the sync API is a grpc.Call; of grpc.aio, an AioRpcError. Both
    carry a code, details and trailing metadata."""
    return isinstance(error, grpc.Call | aio.AioRpcError)


def _status_details(error: grpc.RpcError) -> list[Any]:
    """The google.rpc.Status details from the call's trailing metadata, if any."""
    trailing = error.trailing_metadata() if _is_call(error) else None  # type: ignore[attr-defined,unused-ignore]
    item: Any
    for item in trailing or ():
        key, value = item[0], item[1]
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.MergeFromString(value)
            except DecodeError:
                return []
            return list(status.details)
    return []


def from_rpc_error(error: grpc.RpcError) -> ApiError:
    """The typed error for a failed call, with the details the server attached."""
    call: Any = error if _is_call(error) else None
    code = call.code() if call is not None else grpc.StatusCode.UNKNOWN
    message = (call.details() if call is not None else None) or ""
    cls = _BY_CODE.get(code, UnknownError)
    reason = ""
    metadata: dict[str, str] = {}
    fields: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    resources: list[str] = []
    retry_after: timedelta | None = None
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions += [
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            ]
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            resources.append(resource.resource_name)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.ToTimedelta()
    return cls(
        message,
        code=code,
        reason=reason,
        metadata=metadata,
        field_violations=tuple(fields),
        precondition_violations=tuple(preconditions),
        resource_names=tuple(resources),
        retry_after=retry_after,
        not_shown=_count(metadata.get("not_shown", "")),
    )


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0
