"""WatchAvailability: the request checked, the pairs chosen, then the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from grpc import aio
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.stock import AvailabilityView
from omnistock.server.service.availability import Pair
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.watch import Heartbeat, Watch, WatchHub
from omnistock.server.transport import shopping as shopping_transport
from omnistock.server.transport.auth import principal
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.convert import (
    datetime_to_timestamp,
    exposure_from_proto,
    view_to_proto,
)
from omnistock.v1 import availability_pb2

MAX_WATCH_PAIRS = 1_000
MAX_WATCH_SKUS = 100
DEFAULT_WATCH_STORES = 10
MAX_WATCH_STORES = 50
DEFAULT_HEARTBEAT_SECONDS = 30
MAX_HEARTBEAT_SECONDS = 300

SNAPSHOT = availability_pb2.WATCH_EVENT_KIND_SNAPSHOT
CHANGE = availability_pb2.WATCH_EVENT_KIND_CHANGE
HEARTBEAT = availability_pb2.WATCH_EVENT_KIND_HEARTBEAT


class Watcher:
    def __init__(self, hub: WatchHub, shopping: ShoppingService, runner: BlockingRunner) -> None:
        self._hub = hub
        self._shopping = shopping
        self._runner = runner

    async def stream(
        self,
        request: availability_pb2.WatchAvailabilityRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[bytes]:
        """The stream's messages, as WatchAvailabilityResponse bytes."""
        v = Violations()
        exposure = exposure_from_proto(v, request.exposure)
        heartbeat = DEFAULT_HEARTBEAT_SECONDS
        if request.HasField("heartbeat_seconds"):
            heartbeat = request.heartbeat_seconds
            v.check(
                1 <= heartbeat <= MAX_HEARTBEAT_SECONDS,
                "heartbeat_seconds",
                f"must be within [1, {MAX_HEARTBEAT_SECONDS}]",
            )
        who = principal()
        who.require_exposure(exposure)
        # Named pairs passed the scope check before this ran (transport.scope); near an
        # origin, the stores are chosen from those the caller may see.
        pairs = await self._pairs(v, request, who.locations)
        watch = Watch(pairs, exposure)
        if request.resume_token and not watch.resume(request.resume_token):
            v.add("resume_token", "is not a token from a stream of this same request")
        v.raise_if_any()
        resumed = bool(request.resume_token)
        self._hub.add(watch)
        beat: Heartbeat | None = None
        try:
            views = await self._hub.views(watch, watch.pairs)
            changed = watch.changed(views)
            shown = changed if resumed else views
            beat = Heartbeat(heartbeat, watch.wake)
            yield self._message(
                CHANGE if resumed else SNAPSHOT, [availability_part(v) for v in shown], watch
            )
            beat.sent()
            while True:
                await watch.wake.wait()
                dirty, fresh = watch.take()
                messages = []
                if all(pair in fresh for pair in dirty):
                    # The hub built these answers once for every watch of the pairs.
                    messages = watch.news([fresh[pair] for pair in dirty])
                else:
                    views = await self._hub.views(watch, dirty)
                    messages = [availability_part(v) for v in watch.changed(views)]
                if messages:
                    yield self._message(CHANGE, messages, watch)
                elif beat.due:
                    yield self._message(HEARTBEAT, [], watch)
                else:
                    continue
                beat.sent()
        finally:
            if beat is not None:
                beat.close()
            self._hub.remove(watch)

    async def _pairs(
        self,
        v: Violations,
        request: availability_pb2.WatchAvailabilityRequest,
        visible: frozenset[str] | None,
    ) -> list[Pair]:
        if request.pairs and request.skus:
            v.add("skus", "give pairs, or skus with an origin, not both")
            return []
        if request.pairs:
            if len(request.pairs) > MAX_WATCH_PAIRS:
                v.add("pairs", f"must hold at most {MAX_WATCH_PAIRS:,} pairs")
                return []
            pairs = []
            for i, pair in enumerate(request.pairs):
                check_id(v, pair.sku, f"pairs[{i}].sku")
                check_id(v, pair.location_id, f"pairs[{i}].location_id")
                pairs.append((pair.sku, pair.location_id))
            if not v:
                # NOT_FOUND for an unknown location, before the stream starts.
                await self._runner.run(
                    self._shopping.require_locations, [location for _, location in pairs]
                )
            return pairs
        if not request.skus:
            v.add("pairs", "give pairs, or skus with an origin")
            return []
        if len(request.skus) > MAX_WATCH_SKUS:
            v.add("skus", f"must hold at most {MAX_WATCH_SKUS} skus")
        for i, sku in enumerate(request.skus[:MAX_WATCH_SKUS]):
            check_id(v, sku, f"skus[{i}]")
        origin = shopping_transport.parse_origin(v, request.HasField("origin"), request.origin)
        radius = shopping_transport.parse_radius(
            v, request.HasField("radius_km"), request.radius_km
        )
        limit = DEFAULT_WATCH_STORES
        if request.HasField("limit"):
            limit = request.limit
            v.check(
                1 <= limit <= MAX_WATCH_STORES, "limit", f"must be within [1, {MAX_WATCH_STORES}]"
            )
        if v:
            return []
        stores = await self._runner.run(
            self._shopping.nearest_stores, origin, radius, limit, visible=visible
        )
        return [(sku, store) for store in stores for sku in dict.fromkeys(request.skus)]

    def _message(self, kind: int, parts: Sequence[bytes], watch: Watch) -> bytes:
        """A WatchAvailabilityResponse's bytes: PARTS are its availabilities, each already
        encoded (availability_part), most of them once per change for every watch."""
        token = watch.token().encode()
        # The server's clock, as every time in an answer: the wall clock in service.
        sent = datetime_to_timestamp(self._shopping.now()).SerializeToString()
        return b"".join(
            (
                _KIND,
                _varint(kind),
                *parts,
                _TOKEN,
                _varint(len(token)),
                token,
                _SEND_TIME,
                _varint(len(sent)),
                sent,
            )
        )


# WatchAvailabilityResponse's fields (kind = 1, availabilities = 2, resume_token = 3,
# send_time = 4), written by hand so a change's Availability is serialized once, not once
# per stream; a parser reads them as the message's own serialization.
_KIND, _AVAILABILITY, _TOKEN, _SEND_TIME = b"\x08", b"\x12", b"\x1a", b"\x22"


_SMALL = [bytes((n,)) for n in range(0x80)]  # a varint below 128 is that byte


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def availability_part(view: AvailabilityView) -> bytes:
    """One availabilities element of a WatchAvailabilityResponse, encoded."""
    body = view_to_proto(view).SerializeToString()
    return _AVAILABILITY + _varint(len(body)) + body
