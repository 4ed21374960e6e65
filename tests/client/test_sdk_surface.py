"""The SDK's public names are the intended ones, and its enums match the contract."""

from __future__ import annotations

import omnistock.client as sdk
from omnistock.v1 import common_pb2, location_pb2

INTENDED = {
    "Client", "DEFAULT_TIMEOUT", "from_rpc_error",
    "Location", "LatLng", "WeeklyHours", "HoursException", "Capabilities",
    "Availability", "SkuLocation", "StockUpdate", "ApplyStockUpdatesResponse",
    "Exposure", "StockStatus", "LocationKind", "FreshnessState", "ChannelAvailability", "SkuChannel", "ChannelMethod",
    "SnapshotRecord", "ImportSnapshotResponse", "DeltaRecord", "StreamDeltasRequest",
    "StreamDeltasResponse", "RecordReject", "FeedStatus",
    "IncomingUpdate", "IncomingLine", "IncomingSupply", "ApplyIncomingUpdatesResponse",
    "ImportIncomingSnapshotResponse",
    "CartLine", "Origin", "SearchNearbyResponse", "GetFulfillmentOptionsResponse",
    "NearbyLocation", "FulfillmentOption", "FulfillmentMethod", "cart", "origin",
    "LocationGroup", "LocationProtection", "Channel", "Reservation", "ReservationLine", "ReservationMethod", "ReservationState",
    "AvailabilityWatch", "WatchAvailabilityResponse", "WatchEventKind", "Retry", "AsyncClient", "AsyncAvailabilityWatch",
    "FieldViolation", "PreconditionViolation", "Pager", "AsyncPager", "timestamp", "__version__",
    "OmnistockError", "InvalidRecordError", "ApiError", "InvalidArgumentError", "NotFoundError", "AlreadyExistsError",
    "FailedPreconditionError", "AbortedError", "OutOfRangeError", "UnauthenticatedError",
    "PermissionDeniedError", "ResourceExhaustedError", "DeadlineExceededError", "CancelledError",
    "UnavailableError", "UnimplementedError", "InternalError", "UnknownError",
}  # fmt: skip


def test_exported_names_are_the_intended_ones() -> None:
    assert set(sdk.__all__) == INTENDED
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_sdk_enums_match_the_proto_enums() -> None:
    for member in sdk.Exposure:
        assert common_pb2.Exposure.Value(f"EXPOSURE_{member.name}") == member
    for member in sdk.StockStatus:
        assert common_pb2.StockStatus.Value(f"STOCK_STATUS_{member.name}") == member
    for member in sdk.LocationKind:
        assert location_pb2.LocationKind.Value(f"LOCATION_KIND_{member.name}") == member
    assert len(sdk.StockStatus) == len(common_pb2.StockStatus.values()) - 1
