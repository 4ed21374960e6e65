"""The synchronous client."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc
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


class Client:
    """A typed, synchronous omnistock client.

    Every method takes ``timeout=`` (seconds; defaults to the client's) and
    ``metadata=`` (added to the client's own). Failed calls raise a subclass of
    :class:`omnistock.client.ApiError`.

    >>> with Client("127.0.0.1:50051") as client:                 # doctest: +SKIP
    ...     for a in client.get_availability("ELEC-10000", ["NL-AMS-01"]):
    ...         print(a.location_id, StockStatus(a.status).name)
    NL-AMS-01 LIMITED
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
        channel: grpc.Channel | None = None,
    ) -> None:
        """``api_key``: sent as ``authorization: Bearer <key>`` on every call. ``tls``: use
        TLS (implied by ``root_certificates``, the CA to trust instead of the system's, and
        by ``client_certificate``, a (certificate chain, private key) pair in PEM for mTLS).
        ``retry``: the backoff for idempotent calls that fail UNAVAILABLE or
        RESOURCE_EXHAUSTED (``Retry(attempts=1)`` turns it off). ``timeout``: the deadline
        of reads, in seconds (writes get 30 s, streams none, unless a call says otherwise).
        ``channel``: bring your own (then the TLS options do not apply)."""
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
                grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
                if credentials is None
                else grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
            )
        self._channel = channel
        self._locations = location_pb2_grpc.LocationServiceStub(self._channel)
        self._availability = availability_pb2_grpc.AvailabilityServiceStub(self._channel)
        self._feeds = feed_pb2_grpc.FeedServiceStub(self._channel)
        self._reservations = reservation_pb2_grpc.ReservationServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel, if the client opened it."""
        if self._owns_channel:
            self._channel.close()

    def _call(
        self,
        method: Callable[..., Response],
        request: object,
        timeout: float | None,
        metadata: Metadata,
        *,
        stream: bool = False,
    ) -> Response:
        name = method_name(method)
        # Streams carry whole files: they get no deadline unless the caller sets one.
        if timeout is None and not stream:
            timeout = METHOD_TIMEOUTS.get(name, self.timeout)
        attempts = self.retry.attempts if name in IDEMPOTENT else 1
        attempt = 1
        while True:
            try:
                return method(
                    request,
                    timeout=timeout,
                    metadata=(*self.metadata, *metadata, *trace_metadata()),
                )
            except grpc.RpcError as error:
                failure = from_rpc_error(error)
                if attempt >= attempts or failure.code not in RETRYABLE_CODES:
                    raise failure from None
            time.sleep(self.retry.delay(attempt, failure.retry_after))
            attempt += 1

    # Locations

    def upsert_locations(
        self,
        locations: Iterable[Location],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Location]:
        """Create or replace locations, all or nothing.

        >>> client.upsert_locations([Location(id="NL-AMS-01", ...)])   # doctest: +SKIP
        """
        request = location_pb2.UpsertLocationsRequest(locations=list(locations))
        response = self._call(self._locations.UpsertLocations, request, timeout, metadata)
        return list(response.locations)

    def get_location(
        self, location_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Location:
        """One location by id; raises NotFoundError when there is none."""
        request = location_pb2.GetLocationRequest(location_id=location_id)
        return self._call(self._locations.GetLocation, request, timeout, metadata).location

    def list_locations(
        self,
        *,
        kind: LocationKind | None = None,
        page_size: int = 100,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Iterator[Location]:
        """Every location, ordered by id, fetched a page at a time as you iterate.

        >>> stores = list(client.list_locations(kind=LocationKind.STORE))   # doctest: +SKIP
        """
        token = ""
        while True:
            request = build.list_locations(kind, page_size, token)
            response = self._call(self._locations.ListLocations, request, timeout, metadata)
            yield from response.locations
            token = response.next_page_token
            if not token:
                return

    # Availability

    def get_availability(
        self,
        sku: str,
        location_ids: Iterable[str] = (),
        *,
        exposure: Exposure = Exposure.BANDED,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Availability]:
        """One sku at the given locations (in that order), or at every active location."""
        request = build.get_availability(sku, location_ids, exposure)
        response = self._call(self._availability.GetAvailability, request, timeout, metadata)
        return list(response.availabilities)

    def batch_get_availability(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        exposure: Exposure = Exposure.BANDED,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> list[Availability]:
        """Up to 1,000 (sku, location_id) pairs, answered in the same order.

        >>> client.batch_get_availability([("ELEC-10000", "NL-AMS-01")])   # doctest: +SKIP
        """
        request = build.batch_get_availability(pairs, exposure)
        response = self._call(self._availability.BatchGetAvailability, request, timeout, metadata)
        return list(response.availabilities)

    def search_nearby(
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
        """The nearest stores with the cart's lines (nearest first), and the ship option.

        >>> client.search_nearby(cart({"ELEC-10000": 1}), origin(postal_code="1012 AB"))  # doctest: +SKIP
        """
        request = build.search_nearby(
            cart, origin, radius_km=radius_km, limit=limit, open_now=open_now, method=method,
            require_all=require_all, exposure=exposure,
        )  # fmt: skip
        return self._call(self._availability.SearchNearby, request, timeout, metadata)

    def get_fulfillment_options(
        self,
        cart: Cart,
        origin: Origin,
        *,
        radius_km: float | None = None,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> GetFulfillmentOptionsResponse:
        """Ranked ways to get the whole cart: pickup, ship, ship to store, split."""
        request = build.fulfillment_options(cart, origin, radius_km)
        return self._call(self._availability.GetFulfillmentOptions, request, timeout, metadata)

    # Feeds

    def import_snapshot(
        self,
        location_id: str,
        as_of: datetime,
        records: Iterable[SnapshotRecord | tuple[str, int]],
        *,
        batch_size: int = 5_000,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> ImportSnapshotResponse:
        """Replace the stock of one location as of ``as_of``, all or nothing.

        ``records`` may be any iterable (a generator over a file, say): it is sent
        in batches as it is read. Records of the location missing from it drop to
        zero, unless the stored record is newer than ``as_of``. A naive ``as_of`` raises
        ValueError; a record the SDK cannot send raises InvalidRecordError naming it, and
        an exception from ``records`` is raised as it is: either way the call is
        cancelled and nothing is written.

        >>> client.import_snapshot("NL-AMS-01", now, [("ELEC-10000", 4), ("HOME-10001", 0)])  # doctest: +SKIP
        """
        requests = build.snapshot(location_id, as_of, records, batch_size)
        stream = RequestStream(requests, on_error=OnError.CANCEL, note=SNAPSHOT_NOTE)
        call = start(
            self._feeds.ImportSnapshot.future,
            stream,
            timeout=timeout,
            metadata=(*self.metadata, *metadata, *trace_metadata()),
        )
        try:
            response: ImportSnapshotResponse = call.result()
            return response
        except (grpc.RpcError, grpc.FutureCancelledError) as error:
            failure = stream.failure(error)
        except BaseException:  # KeyboardInterrupt, say: the snapshot must not go on
            call.cancel()
            raise
        raise failure

    def stream_deltas(
        self,
        batches: Iterable[DeltaBatch],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Iterator[StreamDeltasResponse]:
        """Send batches of delta records on one stream; yields one ack per batch, in order.

        A batch is a StreamDeltasRequest, or a sequence of records, each a DeltaRecord or
        a mapping of its fields (``source_updated_at`` may be an aware datetime). Each ack
        counts applied, stale and rejected records, with the index, field and reason of
        each reject. A record the SDK cannot send raises InvalidRecordError naming its
        batch and index, and an exception from ``batches`` is raised as it is, each after
        the acks of the batches sent before it.

        >>> for ack in client.stream_deltas([[DeltaRecord(location_id="NL-AMS-01", sku="ELEC-10000",
        ...                                                adjustment=-1, source_updated_at=ts)]]):
        ...     print(ack.applied_count, ack.stale_count, ack.rejected_count)   # doctest: +SKIP
        """
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
            yield from call
        except grpc.RpcError as error:
            failure = stream.failure(error)
        else:
            failure = stream.failure_after_end()
        finally:
            call.cancel()  # nothing once the call is over; ends it if the caller stopped early
        if failure is not None:
            raise failure

    def get_feed_status(
        self, location_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> FeedStatus:
        """The last snapshot and delta times, counts and freshness of one location's feeds."""
        request = feed_pb2.GetFeedStatusRequest(location_id=location_id)
        return self._call(self._feeds.GetFeedStatus, request, timeout, metadata).status

    def list_feed_status(
        self, *, page_size: int = 100, timeout: float | None = None, metadata: Metadata = ()
    ) -> Iterator[FeedStatus]:
        """The feed status of every location, ordered by id, a page at a time."""
        token = ""
        while True:
            request = feed_pb2.ListFeedStatusRequest(page_size=page_size, page_token=token)
            response = self._call(self._feeds.ListFeedStatus, request, timeout, metadata)
            yield from response.statuses
            token = response.next_page_token
            if not token:
                return

    def export_stock(
        self, location_id: str = "", *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Iterator[Availability]:
        """Exact stock of one location (or every active one), ordered by location and sku."""
        request = feed_pb2.ExportStockRequest(location_id=location_id)
        responses = self._call(self._feeds.ExportStock, request, timeout, metadata, stream=True)
        try:
            for response in responses:
                yield from response.availabilities
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def apply_stock_updates(
        self,
        updates: Iterable[StockUpdate],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> ApplyStockUpdatesResponse:
        """Apply absolute quantities, all or nothing; older updates are counted as stale."""
        request = feed_pb2.ApplyStockUpdatesRequest(updates=list(updates))
        return self._call(self._feeds.ApplyStockUpdates, request, timeout, metadata)

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
    ) -> AvailabilityWatch:
        """Watch (sku, location_id) pairs, or ``skus`` at the stores nearest ``origin``.

        Iterate it for WatchAvailabilityResponse messages: a SNAPSHOT first, then a CHANGE
        whenever an answer changes, and HEARTBEATs. When the connection drops, it
        reconnects (backing off to about 5 s between tries) with the last resume token, so the next message
        is a CHANGE of only what changed meanwhile. ``cancel()`` (or leaving a ``with``
        block) ends it.

        >>> with client.watch_availability([("ELEC-10000", "NL-AMS-01")]) as watch:  # doctest: +SKIP
        ...     for event in watch:
        ...         show(event.availabilities)
        """
        request = build.watch(
            pairs, skus=skus, where=origin, radius_km=radius_km, limit=limit, exposure=exposure,
            heartbeat_seconds=heartbeat_seconds, resume_token=resume_token,
        )  # fmt: skip
        return AvailabilityWatch(
            self._availability.WatchAvailability,
            request,
            metadata=(*self.metadata, *metadata, *trace_metadata()),
            reconnect=reconnect,
        )

    # Reservations

    def create_reservation(
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
        """Hold ``{sku: quantity}`` at one location, every line or none.

        Too little stock raises FailedPreconditionError with one precondition
        violation per short line (subject: the sku; description: what was
        requested and, to a key granted exact counts, what is available). Without an ``idempotency_key`` the client makes one, so a retry
        of this call can never hold twice; pass your own to make retries across
        processes safe too.

        >>> r = client.create_reservation("NL-AMS-01", {"ELEC-10000": 1})  # doctest: +SKIP
        >>> ReservationState(r.state).name                                  # doctest: +SKIP
        'ACTIVE'
        """
        request = build.create_reservation(
            location_id, lines, method=method, ttl=ttl, idempotency_key=idempotency_key,
            customer_reference=customer_reference,
        )  # fmt: skip
        call = self._reservations.CreateReservation
        return self._call(call, request, timeout, metadata).reservation

    def get_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        """One reservation; a lapsed active hold reads as EXPIRED."""
        request = reservation_pb2.GetReservationRequest(reservation_id=reservation_id)
        return self._call(self._reservations.GetReservation, request, timeout, metadata).reservation

    def list_reservations(
        self,
        *,
        location_id: str = "",
        state: ReservationState | None = None,
        page_size: int = 100,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Iterator[Reservation]:
        """Reservations, oldest first, fetched a page at a time as you iterate."""
        token = ""
        while True:
            request = build.list_reservations(location_id, state, page_size, token)
            response = self._call(self._reservations.ListReservations, request, timeout, metadata)
            yield from response.reservations
            token = response.next_page_token
            if not token:
                return

    def extend_reservation(
        self,
        reservation_id: str,
        ttl: timedelta,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Reservation:
        """Move an active hold's expiry to now + ``ttl``."""
        request = build.extend_reservation(reservation_id, ttl)
        call = self._reservations.ExtendReservation
        return self._call(call, request, timeout, metadata).reservation

    def commit_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        """The order is placed: the hold keeps counting until the store's feed shows the
        sale, or fulfill_reservation()."""
        request = reservation_pb2.CommitReservationRequest(reservation_id=reservation_id)
        call = self._reservations.CommitReservation
        return self._call(call, request, timeout, metadata).reservation

    def fulfill_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        """The goods of a committed reservation have left the shelf: stop counting it."""
        request = reservation_pb2.FulfillReservationRequest(reservation_id=reservation_id)
        call = self._reservations.FulfillReservation
        return self._call(call, request, timeout, metadata).reservation

    def release_reservation(
        self, reservation_id: str, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Reservation:
        """Give an active hold back."""
        request = reservation_pb2.ReleaseReservationRequest(reservation_id=reservation_id)
        call = self._reservations.ReleaseReservation
        return self._call(call, request, timeout, metadata).reservation


class AvailabilityWatch:
    """An open WatchAvailability stream that resumes after a disconnect."""

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

    def __enter__(self) -> AvailabilityWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __iter__(self) -> Iterator[WatchAvailabilityResponse]:
        delay = 0.1
        while not self._cancelled:
            request = availability_pb2.WatchAvailabilityRequest()
            request.CopyFrom(self._request)
            request.resume_token = self.resume_token
            self._call = self._method(request, metadata=self._metadata)
            try:
                for message in self._call:
                    self.resume_token = message.resume_token
                    delay = 0.1
                    yield message
                return
            except grpc.RpcError as error:
                if self._cancelled:
                    return
                code = error.code() if isinstance(error, grpc.Call) else None
                if not self._reconnect or code not in self.RECONNECT_CODES:
                    raise from_rpc_error(error) from None
            self.reconnects += 1
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
