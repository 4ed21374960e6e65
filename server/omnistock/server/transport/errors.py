"""The one mapping from domain errors to gRPC status with google.rpc details.

Every status fits within gRPC's default limit on received metadata (8 KiB, the
``grpc.max_metadata_size`` of every client that does not raise it). Past that limit a
caller gets RESOURCE_EXHAUSTED ("received metadata size exceeds soft limit") in place of
the error, so the details are bounded by size: each text is clipped, and violations (or
resource names) are listed while they fit. How many were left out goes into ErrorInfo's
metadata as ``not_shown`` and into the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from omnistock.server.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from omnistock.server.domain.security import PermissionDenied, RateLimited, Unauthenticated

ERROR_DOMAIN = "omnistock"

# The trailers of a failed call are grpc-status, grpc-message (percent-encoded) and
# grpc-status-details-bin (the serialized google.rpc.Status, base64: 4/3 of its size);
# gRPC counts each as name + value + 32 bytes. With the Status within MAX_DETAILS_BYTES
# (5,462 bytes encoded) and the message within MAX_MESSAGE_BYTES (at most 3 x that once
# percent-encoded), the trailers stay under 6.3 KiB: 1.9 KiB below the 8 KiB limit, for
# trailers a proxy adds. tests/api/test_error_detail_size.py measures them.
MAX_DETAILS_BYTES = 4_096
MAX_MESSAGE_BYTES = 256
# Each field path, description, subject or resource name, so that one long value (a
# 10,000-character sku quoted in a description) cannot crowd out the rest.
MAX_TEXT_BYTES = 200
# Room kept for what a length prefix grows by as items are added, and for the count.
_SLACK_BYTES = 16

NOT_SHOWN_KEY = "not_shown"

_CODES: list[tuple[type[DomainError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (RateLimited, code_pb2.RESOURCE_EXHAUSTED),
]


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def clip(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, ending in "..." when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


# The detail that lists an error's items, and its repeated field of them.
Listing = tuple[type[Message], str]


def _items(error: DomainError) -> tuple[Listing | None, list[Message]]:
    """The detail that lists the error's items (None when each item is a detail of its
    own), and the items, each text clipped."""
    if isinstance(error, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation
        return (error_details_pb2.BadRequest, "field_violations"), [
            violation(field=clip(v.field), description=clip(v.description))
            for v in error.violations
        ]
    if isinstance(error, FailedPrecondition) and error.violations:
        failure = error_details_pb2.PreconditionFailure.Violation
        return (error_details_pb2.PreconditionFailure, "violations"), [
            failure(type=kind, subject=clip(subject), description=clip(description))
            for kind, subject, description in error.violations
        ]
    if isinstance(error, NotFound | AlreadyExists):
        resource = error_details_pb2.ResourceInfo
        return None, [
            resource(resource_type=error.resource_type, resource_name=clip(name))
            for name in error.names
        ]
    return None, []


def _status(
    code: int, message: str, info: Message, listing: Listing | None, items: Sequence[Message]
) -> status_pb2.Status:
    details = [_pack(info)]
    if listing is not None:
        kind, field = listing
        detail = kind()
        getattr(detail, field).extend(items)
        details.append(_pack(detail))
    else:
        details.extend(_pack(item) for item in items)
    return status_pb2.Status(code=code, message=message, details=details)


def _fitting(items: Sequence[Message], room: int, *, each_packed: bool) -> int:
    """How many of ``items``, from the first, fit in ``room`` bytes."""
    # An item costs its size and its field's tag and length (3 bytes up to 16 KiB); one
    # packed in an Any of its own also costs the Any's type URL and its own tag and length.
    overhead = 3 + (len(_pack(items[0]).type_url) + 6 if each_packed and items else 0)
    used = 0
    for count, item in enumerate(items):
        used += item.ByteSize() + overhead
        if used > room:
            return count
    return len(items)


def status_for(error: DomainError) -> grpc.Status:
    """A grpc.Status carrying ErrorInfo and the details the error's kind calls for,
    within MAX_DETAILS_BYTES."""
    code = next((c for cls, c in _CODES if isinstance(error, cls)), code_pb2.UNKNOWN)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    message = clip(error.message, MAX_MESSAGE_BYTES)
    if isinstance(error, RateLimited):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(error.retry_after * 1e9))
        status = _status(
            code, message, info, None, [error_details_pb2.RetryInfo(retry_delay=delay)]
        )
        return rpc_status.to_status(status)
    listing, items = _items(error)
    found = len(items) + (error.omitted if isinstance(error, InvalidArgument) else 0)

    def build(shown: int) -> status_pb2.Status:
        not_shown = found - shown
        text = _with_count(message, not_shown) if not_shown else message
        return _status(code, text, _counted(info, not_shown), listing, items[:shown])

    # What the rest takes at its largest (every item left out), and the room for items.
    room = MAX_DETAILS_BYTES - build(0).ByteSize() - _SLACK_BYTES
    shown = _fitting(items, room, each_packed=listing is None)
    status = build(shown)
    while status.ByteSize() > MAX_DETAILS_BYTES and shown > 0:  # the estimate fell short
        shown -= 1
        status = build(shown)
    return rpc_status.to_status(status)


def _with_count(message: str, not_shown: int) -> str:
    return f"{message} ({not_shown:,} not shown in the details)"


def _counted(info: Any, not_shown: int) -> Any:
    """ErrorInfo with the count of what was left out, if anything was."""
    if not not_shown:
        return info
    counted = error_details_pb2.ErrorInfo()
    counted.CopyFrom(info)
    counted.metadata[NOT_SHOWN_KEY] = str(not_shown)
    return counted


def internal_status() -> grpc.Status:
    """What a caller sees of a bug: a stable reason and nothing of the traceback."""
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INTERNAL,
            message="internal error; the server has logged it",
            details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
        )
    )
    return status
