"""The asyncio client: the same surface as Client, on grpc.aio.

Methods are coroutines; pagers and streams are async iterators; the watch resumes
after a disconnect as the sync one does. Each method's docstring is on Client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc import aio
from omnistock.client import _requests as build
from omnistock.client._config import (
    CHANNEL_OPTIONS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    IDEMPOTENT,
    METHOD_TIMEOUTS,
    RETRYABLE_CODES,
    Retry,
    auth_metadata,
    channel_credentials,
    method_name,
)
from omnistock.client._exceptions import from_rpc_error
from omnistock.client._requests import Cart, DeltaBatch
from omnistock.client._streams import (
    DELTAS_NOTE,
    SNAPSHOT_NOTE,
    OnError,
    RequestStream,
    start,
)
from omnistock.client._tracing import trace_metadata
from omnistock.client._types import (
    ApplyStockUpdatesResponse,
    Availability,
    Exposure,
    FeedStatus,
    FulfillmentMethod,
    GetFulfillmentOptionsResponse,
    ImportSnapshotResponse,
    Location,
    LocationKind,
    Origin,
    Reservation,
    ReservationMethod,
    ReservationState,
    SearchNearbyResponse,
    SnapshotRecord,
    StockUpdate,
    StreamDeltasResponse,
    WatchAvailabilityResponse,
)
from omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    feed_pb2,
    feed_pb2_grpc,
    location_pb2,
    location_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)

Metadata = Sequence[tuple[str, str]]
Response = TypeVar("Response")


class AsyncClient:
    """A typed omnistock client for asyncio; the options are Client's.

    >>> async with AsyncClient("127.0.0.1:50051", api_key=key) as client:   # doctest: +SKIP
    ...     answers = await client.get_availability("ELEC-10000", ["NL-AMS-01"])
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        metadata: Metadata = (),
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: tuple[bytes, bytes] | None = None,
        retry: Retry = DEFAULT_RETRY,
        channel: aio.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry
        self.metadata = (*auth_metadata(api_key), *metadata)
        self._owns_channel = channel is None
        if channel is None:
            credentials = channel_credentials(
                tls=tls, root_certificates=root_certificates, client_certificate=client_certificate
            )
            channel = (
                aio.insecure_channel(target, options=CHANNEL_OPTIONS)
                if credentials is None
                else aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
            )
        self._channel = channel
        self._locations = location_pb2_grpc.LocationServiceStub(channel)
        self._availability = availability_pb2_grpc.AvailabilityServiceStub(channel)
        self._feeds = feed_pb2_grpc.FeedServiceStub(channel)
        self._reservations = reservation_pb2_grpc.ReservationServiceStub(channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def _call(
        self,
        method: Callable[..., Any],
        request: object,
        timeout: float | None,
        metadata: Metadata,
    ) -> Any:
        name = method_name(method)
        if timeout is None:
            timeout = METHOD_TIMEOUTS.get(name, self.timeout)
        attempts = self.retry.attempts if name in IDEMPOTENT else 1
        attempt = 1
        while True:
            try:
                return await method(
                    request,
                    timeout=timeout,
                    metadata=(*self.metadata, *metadata, *trace_metadata()),
                )
            except grpc.RpcError as error:
                failure = from_rpc_error(error)
                if attempt >= attempts or failure.code not in RETRYABLE_CODES:
                    raise failure from None
            await asyncio.sleep(self.retry.delay(attempt, failure.retry_after))
            attempt += 1

    async def _stream(self, call: Any) -> AsyncIterator[Any]:
        try:
            async for message in call:
                yield message
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # Locations

    async def upsert_locations(
        self,
        locations: Iterable[Location],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Location]:
        request = location_pb2.UpsertLocationsRequest(locations=list(locations))
        response = await self._call(self._locations.UpsertLocations, request, timeout, metadata)
        return list(response.locations)

    async def get_location(
        self, location_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Location:
        request = location_pb2.GetLocationRequest(location_id=location_id)
        response = await self._call(self._locations.GetLocation, request, timeout, metadata)
        return response.location  # type: ignore[no-any-return]

    async def list_locations(
        self,
        *,
        kind: LocationKind | None = None,
        page_size: int = 100,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Location]:
        token = ""
        while True:
            request = build.list_locations(kind, page_size, token)
            response = await self._call(self._locations.ListLocations, request, timeout, metadata)
            for location in response.locations:
                yield location
            token = response.next_page_token
            if not token:
                return

    # Availability

    async def get_availability(
        self,
        sku: str,
        location_ids: Iterable[str] = (),
        *,
        exposure: Exposure = Exposure.BANDED,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Availability]:
        request = build.get_availability(sku, location_ids, exposure)
        response = await self._call(self._availability.GetAvailability, request, timeout, metadata)
        return list(response.availabilities)

    async def batch_get_availability(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        exposure: Exposure = Exposure.BANDED,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Availability]:
        request = build.batch_get_availability(pairs, exposure)
        call = self._availability.BatchGetAvailability
        return list((await self._call(call, request, timeout, metadata)).availabilities)

    async def search_nearby(
        self,
        cart: Cart,
        origin: Origin,
        *,
        radius_km: float | None = None,
        limit: int | None = None,
        open_now: bool = False,
        method: FulfillmentMethod = FulfillmentMethod.PICKUP,
        require_all: bool = False,
        exposure: Exposure = Exposure.BANDED,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> SearchNearbyResponse:
        request = build.search_nearby(
            cart, origin, radius_km=radius_km, limit=limit, open_now=open_now, method=method,
            require_all=require_all, exposure=exposure,
        )  # fmt: skip
        return await self._call(self._availability.SearchNearby, request, timeout, metadata)  # type: ignore[no-any-return]

    async def get_fulfillment_options(
        self,
        cart: Cart,
        origin: Origin,
        *,
        radius_km: float | None = None,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> GetFulfillmentOptionsResponse:
        request = build.fulfillment_options(cart, origin, radius_km)
        call = self._availability.GetFulfillmentOptions
        return await self._call(call, request, timeout, metadata)  # type: ignore[no-any-return]

    def watch_availability(
        self,
        pairs: Iterable[tuple[str, str]] = (),
        *,
        skus: Iterable[str] = (),
        origin: Origin | None = None,
        radius_km: float | None = None,
        limit: int | None = None,
        exposure: Exposure = Exposure.BANDED,
        heartbeat_seconds: int | None = None,
        resume_token: str = "",
        reconnect: bool = True,
        metadata: Metadata = (),
    ) -> AsyncAvailabilityWatch:
        request = build.watch(
            pairs, skus=skus, where=origin, radius_km=radius_km, limit=limit, exposure=exposure,
            heartbeat_seconds=heartbeat_seconds, resume_token=resume_token,
        )  # fmt: skip
        return AsyncAvailabilityWatch(
            self._availability.WatchAvailability,
            request,
            metadata=(*self.metadata, *metadata, *trace_metadata()),
            reconnect=reconnect,
        )

    # Feeds

    async def import_snapshot(
        self,
        location_id: str,
        as_of: datetime,
        records: Iterable[SnapshotRecord | tuple[str, int]],
        *,
        batch_size: int = 5_000,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> ImportSnapshotResponse:
        requests = build.snapshot(location_id, as_of, records, batch_size)
        stream = RequestStream(requests, on_error=OnError.CANCEL, note=SNAPSHOT_NOTE)
        call = start(
            self._feeds.ImportSnapshot,
            stream,
            timeout=timeout,
            metadata=(*self.metadata, *metadata, *trace_metadata()),
        )
        try:
            return await call  # type: ignore[no-any-return]
        except (grpc.RpcError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and _task_cancelled():
                raise
            failure = stream.failure(error)
        raise failure

    async def stream_deltas(
        self,
        batches: Iterable[DeltaBatch],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[StreamDeltasResponse]:
        requests = (build.delta_batch(number, batch) for number, batch in enumerate(batches))
        stream = RequestStream(requests, on_error=OnError.CLOSE, note=DELTAS_NOTE)
        call = start(
            self._feeds.StreamDeltas,
            stream,
            timeout=timeout,
            metadata=(*self.metadata, *metadata, *trace_metadata()),
        )
        failure: BaseException | None
        try:
            async for ack in call:
                yield ack
        except grpc.RpcError as error:
            failure = stream.failure(error)
        else:
            failure = stream.failure_after_end()
        finally:
            call.cancel()  # nothing once the call is over; ends it if the caller stopped early
        if failure is not None:
            raise failure

    async def apply_stock_updates(
        self,
        updates: Iterable[StockUpdate],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> ApplyStockUpdatesResponse:
        request = feed_pb2.ApplyStockUpdatesRequest(updates=list(updates))
        return await self._call(self._feeds.ApplyStockUpdates, request, timeout, metadata)  # type: ignore[no-any-return]

    async def get_feed_status(
        self, location_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> FeedStatus:
        request = feed_pb2.GetFeedStatusRequest(location_id=location_id)
        return (await self._call(self._feeds.GetFeedStatus, request, timeout, metadata)).status  # type: ignore[no-any-return]

    async def list_feed_status(
        self, *, page_size: int = 100, timeout: float | None = None, metadata: Metadata = ()
    ) -> AsyncIterator[FeedStatus]:
        token = ""
        while True:
            request = feed_pb2.ListFeedStatusRequest(page_size=page_size, page_token=token)
            response = await self._call(self._feeds.ListFeedStatus, request, timeout, metadata)
            for status in response.statuses:
                yield status
            token = response.next_page_token
            if not token:
                return

    async def export_stock(
        self, location_id: str = "", *, timeout: float | None = None, metadata: Metadata = ()
    ) -> AsyncIterator[Availability]:
        request = feed_pb2.ExportStockRequest(location_id=location_id)
        call = self._feeds.ExportStock(
            request, timeout=timeout, metadata=(*self.metadata, *metadata, *trace_metadata())
        )
        async for page in self._stream(call):
            for availability in page.availabilities:
                yield availability

    # Reservations

    async def create_reservation(
        self,
        location_id: str,
        lines: Mapping[str, int],
        *,
        method: ReservationMethod = ReservationMethod.PICKUP,
        ttl: timedelta | None = None,
        idempotency_key: str | None = None,
        customer_reference: str = "",
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Reservation:
        request = build.create_reservation(
            location_id, lines, method=method, ttl=ttl, idempotency_key=idempotency_key,
            customer_reference=customer_reference,
        )  # fmt: skip
        call = self._reservations.CreateReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]

    async def get_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        request = reservation_pb2.GetReservationRequest(reservation_id=reservation_id)
        call = self._reservations.GetReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]

    async def list_reservations(
        self,
        *,
        location_id: str = "",
        state: ReservationState | None = None,
        page_size: int = 100,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Reservation]:
        token = ""
        while True:
            request = build.list_reservations(location_id, state, page_size, token)
            call = self._reservations.ListReservations
            response = await self._call(call, request, timeout, metadata)
            for reservation in response.reservations:
                yield reservation
            token = response.next_page_token
            if not token:
                return

    async def extend_reservation(
        self,
        reservation_id: str,
        ttl: timedelta,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Reservation:
        request = build.extend_reservation(reservation_id, ttl)
        call = self._reservations.ExtendReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]

    async def commit_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        request = reservation_pb2.CommitReservationRequest(reservation_id=reservation_id)
        call = self._reservations.CommitReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]

    async def fulfill_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        request = reservation_pb2.FulfillReservationRequest(reservation_id=reservation_id)
        call = self._reservations.FulfillReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]

    async def release_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        request = reservation_pb2.ReleaseReservationRequest(reservation_id=reservation_id)
        call = self._reservations.ReleaseReservation
        return (await self._call(call, request, timeout, metadata)).reservation  # type: ignore[no-any-return]


class AsyncAvailabilityWatch:
    """An open WatchAvailability stream for asyncio that resumes after a disconnect."""

    RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE,)

    def __init__(
        self,
        method: Callable[..., Any],
        request: availability_pb2.WatchAvailabilityRequest,
        *,
        metadata: Metadata,
        reconnect: bool,
    ) -> None:
        self._method = method
        self._request = request
        self._metadata = tuple(metadata)
        self._reconnect = reconnect
        self._cancelled = False
        self._call: Any = None
        self.resume_token = request.resume_token
        self.reconnects = 0

    async def __aenter__(self) -> AsyncAvailabilityWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[WatchAvailabilityResponse]:
        delay = 0.1
        while not self._cancelled:
            request = availability_pb2.WatchAvailabilityRequest()
            request.CopyFrom(self._request)
            request.resume_token = self.resume_token
            self._call = self._method(request, metadata=self._metadata)
            try:
                async for message in self._call:
                    self.resume_token = message.resume_token
                    delay = 0.1
                    yield message
                return
            except asyncio.CancelledError:
                if self._cancelled:
                    return
                raise
            except grpc.RpcError as error:
                if self._cancelled:
                    return
                code = error.code() if isinstance(error, aio.AioRpcError) else None
                if not self._reconnect or code not in self.RECONNECT_CODES:
                    raise from_rpc_error(error) from None
            self.reconnects += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)


def _task_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just the call)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
