"""Enums and message types the SDK's callers use, re-exported from the generated code."""

from __future__ import annotations

import enum

from omnistock.v1 import (
    availability_pb2,
    channel_pb2,
    common_pb2,
    feed_pb2,
    location_pb2,
    reservation_pb2,
)

Location = location_pb2.Location
LatLng = common_pb2.LatLng
WeeklyHours = location_pb2.WeeklyHours
HoursException = location_pb2.HoursException
Capabilities = location_pb2.Capabilities
Availability = availability_pb2.Availability
SkuLocation = availability_pb2.SkuLocation
StockUpdate = feed_pb2.StockUpdate
ApplyStockUpdatesResponse = feed_pb2.ApplyStockUpdatesResponse
SnapshotRecord = feed_pb2.SnapshotRecord
ImportSnapshotResponse = feed_pb2.ImportSnapshotResponse
DeltaRecord = feed_pb2.DeltaRecord
StreamDeltasRequest = feed_pb2.StreamDeltasRequest
StreamDeltasResponse = feed_pb2.StreamDeltasResponse
RecordReject = feed_pb2.RecordReject
IncomingUpdate = feed_pb2.IncomingUpdate
IncomingLine = feed_pb2.IncomingLine
IncomingSupply = feed_pb2.IncomingSupply
ApplyIncomingUpdatesResponse = feed_pb2.ApplyIncomingUpdatesResponse
ImportIncomingSnapshotResponse = feed_pb2.ImportIncomingSnapshotResponse
FeedStatus = feed_pb2.FeedStatus
CartLine = availability_pb2.CartLine
Origin = availability_pb2.Origin
SearchNearbyResponse = availability_pb2.SearchNearbyResponse
GetFulfillmentOptionsResponse = availability_pb2.GetFulfillmentOptionsResponse
NearbyLocation = availability_pb2.NearbyLocation
FulfillmentOption = availability_pb2.FulfillmentOption
Reservation = reservation_pb2.Reservation
WatchAvailabilityResponse = availability_pb2.WatchAvailabilityResponse
ReservationLine = reservation_pb2.ReservationLine
LocationGroup = channel_pb2.LocationGroup
Channel = channel_pb2.Channel
LocationProtection = channel_pb2.LocationProtection
ChannelAvailability = channel_pb2.ChannelAvailability
SkuChannel = channel_pb2.SkuChannel


class FulfillmentMethod(enum.IntEnum):
    PICKUP = availability_pb2.FULFILLMENT_METHOD_PICKUP
    SHIP = availability_pb2.FULFILLMENT_METHOD_SHIP
    SHIP_TO_STORE = availability_pb2.FULFILLMENT_METHOD_SHIP_TO_STORE
    SPLIT = availability_pb2.FULFILLMENT_METHOD_SPLIT


class FreshnessState(enum.IntEnum):
    FRESH = feed_pb2.FRESHNESS_STATE_FRESH
    STALE = feed_pb2.FRESHNESS_STATE_STALE
    NEVER_REPORTED = feed_pb2.FRESHNESS_STATE_NEVER_REPORTED


class Exposure(enum.IntEnum):
    """How exactly quantities are shown: EXACT counts, or BANDED status only."""

    EXACT = common_pb2.EXPOSURE_EXACT
    BANDED = common_pb2.EXPOSURE_BANDED


class StockStatus(enum.IntEnum):
    IN_STOCK = common_pb2.STOCK_STATUS_IN_STOCK
    LIMITED = common_pb2.STOCK_STATUS_LIMITED
    OUT_OF_STOCK = common_pb2.STOCK_STATUS_OUT_OF_STOCK
    UNKNOWN = common_pb2.STOCK_STATUS_UNKNOWN


class LocationKind(enum.IntEnum):
    STORE = location_pb2.LOCATION_KIND_STORE
    WAREHOUSE = location_pb2.LOCATION_KIND_WAREHOUSE


class ChannelMethod(enum.IntEnum):
    """How a channel sells: shipped, or picked up at a store."""

    SHIP = channel_pb2.CHANNEL_METHOD_SHIP
    PICKUP = channel_pb2.CHANNEL_METHOD_PICKUP


class ReservationMethod(enum.IntEnum):
    PICKUP = reservation_pb2.RESERVATION_METHOD_PICKUP
    CHECKOUT = reservation_pb2.RESERVATION_METHOD_CHECKOUT


class ReservationState(enum.IntEnum):
    ACTIVE = reservation_pb2.RESERVATION_STATE_ACTIVE
    COMMITTED = reservation_pb2.RESERVATION_STATE_COMMITTED
    RELEASED = reservation_pb2.RESERVATION_STATE_RELEASED
    EXPIRED = reservation_pb2.RESERVATION_STATE_EXPIRED


class WatchEventKind(enum.IntEnum):
    SNAPSHOT = availability_pb2.WATCH_EVENT_KIND_SNAPSHOT
    CHANGE = availability_pb2.WATCH_EVENT_KIND_CHANGE
    HEARTBEAT = availability_pb2.WATCH_EVENT_KIND_HEARTBEAT
