"""The synchronous client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import grpc
from omnistock.client._exceptions import from_rpc_error
from omnistock.client._types import (
    ApplyStockUpdatesResponse,
    Availability,
    Exposure,
    Location,
    LocationKind,
    StockUpdate,
)
from omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    feed_pb2,
    feed_pb2_grpc,
    location_pb2,
    location_pb2_grpc,
)

DEFAULT_TIMEOUT = 10.0
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
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.metadata = tuple(metadata)
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else grpc.insecure_channel(target)
        self._locations = location_pb2_grpc.LocationServiceStub(self._channel)
        self._availability = availability_pb2_grpc.AvailabilityServiceStub(self._channel)
        self._feeds = feed_pb2_grpc.FeedServiceStub(self._channel)

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
    ) -> Response:
        try:
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=(*self.metadata, *metadata),
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

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
            request = location_pb2.ListLocationsRequest(
                page_size=page_size,
                page_token=token,
                kind=0 if kind is None else int(kind),  # type: ignore[arg-type]
            )
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
        request = availability_pb2.GetAvailabilityRequest(
            sku=sku,
            location_ids=list(location_ids),
            exposure=int(exposure),  # type: ignore[arg-type]
        )
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
        request = availability_pb2.BatchGetAvailabilityRequest(
            items=[availability_pb2.SkuLocation(sku=sku, location_id=loc) for sku, loc in pairs],
            exposure=int(exposure),  # type: ignore[arg-type]
        )
        response = self._call(self._availability.BatchGetAvailability, request, timeout, metadata)
        return list(response.availabilities)

    # Feeds

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
