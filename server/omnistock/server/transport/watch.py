"""WatchAvailability: the request checked, the pairs chosen, then the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from grpc import aio
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.stock import AvailabilityView, Exposure
from omnistock.server.readmodel.channel_queries import ChannelItem, ChannelReply
from omnistock.server.readmodel.queries import ReadModel
from omnistock.server.service.availability import Pair
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.watch import Heartbeat, Watch, WatchHub
from omnistock.server.transport import channel_answers
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
    def __init__(
        self,
        hub: WatchHub,
        shopping: ShoppingService,
        runner: BlockingRunner,
        reads: ReadModel,
        *,
        banded_max_quantity: int,
    ) -> None:
        self._hub = hub
        self._shopping = shopping
        self._runner = runner
        self._reads = reads
        self._banded_max = banded_max_quantity

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
        items = self._channel_items(v, request, who.exposure)
        pairs = await self._pairs(v, request, who.locations) if not items or request.pairs else []
        watch = Watch(pairs, exposure, items)
        if request.resume_token and not watch.resume(request.resume_token):
            v.add("resume_token", "is not a token from a stream of this same request")
        v.raise_if_any()
        channel_answers.require_channels(who, (item.channel_id for item in items))
        resumed = bool(request.resume_token)
        self._hub.add(watch)
        beat: Heartbeat | None = None
        try:
            views = await self._hub.views(watch, watch.pairs) if watch.pairs else []
            changed = watch.changed(views)
            shown = changed if resumed else views
            replies = await self._channel_replies(watch)
            said = watch.channels_changed(replies)
            beat = Heartbeat(heartbeat, watch.wake)
            yield self._message(
                CHANGE if resumed else SNAPSHOT,
                [availability_part(v) for v in shown],
                watch,
                said if resumed else replies,
            )
            beat.sent()
            while True:
                await self._wait(watch)
                dirty, fresh = watch.take()
                said = []
                if watch.channels_dirty:
                    watch.channels_dirty = False
                    said = watch.channels_changed(await self._channel_replies(watch))
                messages = []
                if all(pair in fresh for pair in dirty):
                    # The hub built these answers once for every watch of the pairs.
                    messages = watch.news([fresh[pair] for pair in dirty])
                else:
                    views = await self._hub.views(watch, dirty)
                    messages = [availability_part(v) for v in watch.changed(views)]
                if messages or said:
                    yield self._message(CHANGE, messages, watch, said)
                elif beat.due:
                    yield self._message(HEARTBEAT, [], watch)
                else:
                    continue
                beat.sent()
        finally:
            if beat is not None:
                beat.close()
            self._hub.remove(watch)

    async def _wait(self, watch: Watch) -> None:
        """Until the watch is woken (a change, or its heartbeat is due), or until the first
        of its channel answers' valid_until comes: time alone changes channel answers.
        valid_until is on the server's clock, so it is looked at at least each second."""
        while watch.wake_at is not None:
            due = (watch.wake_at - self._shopping.now()).total_seconds()
            try:
                async with asyncio.timeout(max(0.0, min(due, 1.0))):
                    await watch.wake.wait()
                return
            except TimeoutError:
                if self._shopping.now() >= watch.wake_at:
                    watch.mark_channels()
                    return
        await watch.wake.wait()

    def _channel_items(
        self, v: Violations, request: availability_pb2.WatchAvailabilityRequest, granted: Exposure
    ) -> list[ChannelItem]:
        asked = request.channel_pairs
        if len(asked) + len(request.pairs) > MAX_WATCH_PAIRS:
            v.add("channel_pairs", f"with pairs, must hold at most {MAX_WATCH_PAIRS:,} pairs")
            return []
        if asked and request.skus:
            v.add("skus", "give channel_pairs with pairs, or alone, not with skus")
        return [
            channel_answers.parse_item(
                v,
                f"channel_pairs[{i}]",
                sku=item.sku,
                channel_id=item.channel_id,
                method=item.method,
                quantity=item.quantity,
                granted=granted,
                banded_max=self._banded_max,
            )
            for i, item in enumerate(asked)
        ]

    async def _channel_replies(self, watch: Watch) -> list[ChannelReply]:
        """The watch's channel answers now (a sku need not exist yet)."""
        if not watch.channel_items:
            return []
        return await self._reads.channel_answers(
            watch.channel_items,
            exposure=watch.exposure,
            field=lambda i: f"channel_pairs[{i}].channel_id",
            must_exist=False,
        )

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

    def _message(
        self,
        kind: int,
        parts: Sequence[bytes],
        watch: Watch,
        replies: Sequence[ChannelReply] = (),
    ) -> bytes:
        """A WatchAvailabilityResponse's bytes: PARTS are its availabilities, each already
        encoded (availability_part), most of them once per change for every watch; REPLIES
        its channel answers."""
        token = watch.token().encode()
        # The server's clock, as every time in an answer: the wall clock in service.
        sent = datetime_to_timestamp(self._shopping.now()).SerializeToString()
        return b"".join(
            (
                _KIND,
                _varint(kind),
                *parts,
                *(channel_part(reply) for reply in replies),
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
_CHANNEL_AVAILABILITY = b"\x2a"  # channel_availabilities = 5


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


def channel_part(reply: ChannelReply) -> bytes:
    """One channel_availabilities element of a WatchAvailabilityResponse, encoded."""
    body = channel_answers.reply_to_proto(reply).SerializeToString()
    return _CHANNEL_AVAILABILITY + _varint(len(body)) + body
