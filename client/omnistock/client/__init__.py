"""The omnistock Python SDK.

from omnistock.client import Client, Exposure

with Client("127.0.0.1:50051") as client:
    for answer in client.get_availability("ELEC-10000", ["NL-AMS-01"], exposure=Exposure.EXACT):
        print(answer.location_id, answer.available_to_sell)
"""

from omnistock.client._client import DEFAULT_TIMEOUT, Client
from omnistock.client._exceptions import (
    AbortedError,
    AlreadyExistsError,
    ApiError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OmnistockError,
    OutOfRangeError,
    PermissionDeniedError,
    PreconditionViolation,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
    from_rpc_error,
)
from omnistock.client._types import (
    ApplyStockUpdatesResponse,
    Availability,
    Capabilities,
    Exposure,
    HoursException,
    LatLng,
    Location,
    LocationKind,
    SkuLocation,
    StockStatus,
    StockUpdate,
    WeeklyHours,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AbortedError",
    "AlreadyExistsError",
    "ApiError",
    "ApplyStockUpdatesResponse",
    "Availability",
    "CancelledError",
    "Capabilities",
    "Client",
    "DeadlineExceededError",
    "Exposure",
    "FailedPreconditionError",
    "FieldViolation",
    "HoursException",
    "InternalError",
    "InvalidArgumentError",
    "LatLng",
    "Location",
    "LocationKind",
    "NotFoundError",
    "OmnistockError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "PreconditionViolation",
    "ResourceExhaustedError",
    "SkuLocation",
    "StockStatus",
    "StockUpdate",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "WeeklyHours",
    "from_rpc_error",
]
