"""Watch streams: what a kiosk sees change, as it changes.

The hub keeps an index from (sku, location) pairs and from locations to the watches
that care. The change bus calls it from any thread; it hops onto the event loop, reads
the changed records once for every watch (so a thousand kiosks on one product make one
database read, not a thousand), builds each changed pair's answer once per exposure, and
marks each affected watch with it: per watch, a change costs a set add, a dict store and
a wake.

A watch holds a set of dirty pairs and an event, never a queue: a slow reader finds
the latest state when it next looks, so memory per watch is bounded by the pairs it
watches, whatever the rate of change.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from omnistock.server.domain.stock import AvailabilityView, Exposure
from omnistock.server.readmodel.channel_queries import ChannelItem, ChannelReply
from omnistock.server.service.availability import AvailabilityService, Pair
from omnistock.server.service.changes import Changes

log = logging.getLogger("omnistock.watch")

RunBlocking = Callable[..., Awaitable[Any]]


class ReadViews(Protocol):
    def __call__(
        self, pairs: Sequence[Pair], *, exposure: Exposure
    ) -> Awaitable[list[AvailabilityView]]: ...


def channel_signature(reply: ChannelReply) -> tuple[int, int, int]:
    """What a channel watcher is told about: the band, and for exact callers the
    quantities (available to fulfil, and to order; -1 where there is none)."""
    answer = reply.answer
    if answer.exposure is Exposure.EXACT:
        to_order = -1 if answer.available_to_order is None else answer.available_to_order
        return (int(answer.status), answer.available_to_fulfil or 0, to_order)
    return (int(answer.status), 0, 0)


def signature(view: AvailabilityView) -> tuple[int, int]:
    """What a watcher is told about: the band for banded callers, the quantity (and band)
    for exact ones."""
    if view.exposure is Exposure.EXACT:
        return (int(view.status), view.available_to_sell or 0)
    return (int(view.status), 0)


class Fresh(NamedTuple):
    """A changed pair's answer, built once per change and exposure by the hub and shared by
    every watch of the pair: the view, its message as the transport presents it (the
    encoded Availability), and its signature."""

    view: AvailabilityView
    message: Any
    signature: tuple[int, int]


class Watch:
    def __init__(
        self,
        pairs: Sequence[Pair],
        exposure: Exposure,
        channel_items: Sequence[ChannelItem] = (),
    ) -> None:
        self.pairs = list(dict.fromkeys(pairs))
        self.exposure = exposure
        # Sku x channel items: read again whenever a change may touch their sku (or any
        # channel), and when the earliest of their answers' valid_until comes.
        self.channel_items = list(dict.fromkeys(channel_items))
        self.channels_dirty = False
        self.wake_at: datetime | None = None
        self.channel_sent: dict[ChannelItem, tuple[int, int, int]] = {}
        self._until: dict[ChannelItem, datetime | None] = {}
        self.dirty: set[Pair] = set()
        # Answers the hub already built for this change, shared by every watch of the pair.
        self.fresh: dict[Pair, Fresh] = {}
        self.wake = asyncio.Event()
        self.sent: dict[Pair, tuple[int, int]] = {}
        self._request_key = self._key()
        self._token: str | None = None
        # The token's JSON, a piece per pair, so a change re-encodes only its own pairs.
        self._index = {pair: i for i, pair in enumerate(self.pairs)}
        self._said = ["[0,0]"] * len(self.pairs)
        self._by_location: defaultdict[str, list[Pair]] = defaultdict(list)
        for pair in self.pairs:
            self._by_location[pair[1]].append(pair)

    @property
    def locations(self) -> list[str]:
        return list(self._by_location)

    def at(self, location_id: str) -> list[Pair]:
        return self._by_location.get(location_id, [])

    def mark(self, pair: Pair, fresh: Fresh | None) -> None:
        """``pair`` changed; ``fresh`` is its answer (None: the stream reads it itself)."""
        self.dirty.add(pair)
        if fresh is None:
            self.fresh.pop(pair, None)  # never an answer older than the change
        else:
            self.fresh[pair] = fresh
        self.wake.set()

    def mark_channels(self) -> None:
        self.channels_dirty = True
        self.wake.set()

    def channels_changed(self, replies: Sequence[ChannelReply]) -> list[ChannelReply]:
        """The channel answers that differ from what this watch last sent; remembers them
        as sent, and wakes next at the earliest valid_until among all of them."""
        out = []
        for reply in replies:
            sig = channel_signature(reply)
            if self.channel_sent.get(reply.item) != sig:
                self.channel_sent[reply.item] = sig
                self._token = None
                out.append(reply)
            self._until[reply.item] = reply.answer.valid_until
        ends = [until for until in self._until.values() if until is not None]
        self.wake_at = min(ends, default=None)
        return out

    def take(self) -> tuple[list[Pair], dict[Pair, Fresh]]:
        """The dirty pairs in watch order, and the answers built for them."""
        if len(self.dirty) == 1:
            dirty = list(self.dirty)
        else:
            dirty = [pair for pair in self.pairs if pair in self.dirty]
        fresh, self.fresh = self.fresh, {}
        self.dirty.clear()
        self.wake.clear()
        return dirty, fresh

    def changed(self, views: Sequence[AvailabilityView]) -> list[AvailabilityView]:
        """The views that differ from what this watch last sent; remembers them as sent."""
        return [
            view for view in views if self._said_now((view.sku, view.location_id), signature(view))
        ]

    def news(self, built: Sequence[Fresh]) -> list[Any]:
        """The messages of the hub's answers that differ from what this watch last sent;
        remembers them as sent."""
        return [
            fresh.message
            for fresh in built
            if self._said_now((fresh.view.sku, fresh.view.location_id), fresh.signature)
        ]

    def _said_now(self, pair: Pair, sig: tuple[int, int]) -> bool:
        if self.sent.get(pair) == sig:
            return False
        self.sent[pair] = sig
        self._said[self._index[pair]] = f"[{sig[0]},{sig[1]}]"
        self._token = None
        return True

    # -- resume tokens: what the stream last said, so a new stream can say only the news

    def _key(self) -> str:
        asked: list[Any] = [self.pairs, int(self.exposure)]
        if self.channel_items:
            asked.append(
                [[i.sku, i.channel_id, int(i.method), i.quantity] for i in self.channel_items]
            )
        text = json.dumps(asked, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def token(self) -> str:
        """Built when what the stream has said changes, not per message; compressed only
        when that pays (large watches)."""
        if self._token is None:
            # The same bytes as json.dumps({"k": key, "s": said}, separators=(",", ":")).
            said = ",".join(self._said)
            channels = ""
            if self.channel_items:
                channel_said = [
                    list(self.channel_sent.get(i, (0, 0, 0))) for i in self.channel_items
                ]
                channels = ',"c":' + json.dumps(channel_said, separators=(",", ":"))
            raw = f'{{"k":"{self._request_key}","s":[{said}]{channels}}}'.encode()
            if len(raw) > 512:
                raw = b"z" + zlib.compress(raw)
            self._token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return self._token

    def resume(self, token: str) -> bool:
        """Take what an earlier stream of the same request said; False if the token is not
        one (or belongs to another request)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if raw[:1] == b"z":
                raw = zlib.decompress(raw[1:])
            data = json.loads(raw)
            said = data["s"]
            if data["k"] != self._request_key or len(said) != len(self.pairs):
                return False
            channel_said = data.get("c", [])
            if len(channel_said) != len(self.channel_items):
                return False
            sent = {
                pair: (int(s[0]), int(s[1]))
                for pair, s in zip(self.pairs, said, strict=True)
                if s[0] != 0
            }
            self.sent = {}
            for pair, sig in sent.items():
                self._said_now(pair, sig)
            self.channel_sent = {
                item: (int(c[0]), int(c[1]), int(c[2]))
                for item, c in zip(self.channel_items, channel_said, strict=True)
                if c[0] != 0
            }
            self._token = None
            return True
        except (ValueError, KeyError, TypeError, IndexError, zlib.error):
            return False


class Heartbeat:
    """Says when a stream has sent nothing for ``seconds``: sets ``due`` and wakes the watch.

    One timer per quiet period, not one per message: a message only notes its time, and
    the timer, when it fires early, waits again for what is left."""

    def __init__(self, seconds: float, wake: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._wake = wake
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self.due = False
        self.sent()

    def sent(self) -> None:
        """A message went out: the quiet period starts again."""
        self._last = self._loop.time()
        self.due = False
        if self._timer is None:
            self._timer = self._loop.call_at(self._last + self._seconds, self._fire)

    def _fire(self) -> None:
        at = self._last + self._seconds
        if self._loop.time() + 0.001 < at:  # a message went out since it was set
            self._timer = self._loop.call_at(at, self._fire)
            return
        self._timer = None
        self.due = True
        self._wake.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class WatchHub:
    def __init__(
        self,
        availability: AvailabilityService,
        run_blocking: RunBlocking,
        present: Callable[[AvailabilityView], Any] | None = None,
        *,
        read: ReadViews,
    ) -> None:
        self._availability = availability
        self._run = run_blocking
        # The read model's query for pairs' answers (ReadModel.pair_views).
        self._read = read
        # The transport's view -> message conversion, so one change makes one message per
        # pair and exposure, shared by every watch of it.
        self._present = present
        self._by_pair: defaultdict[Pair, set[Watch]] = defaultdict(set)
        self._by_location: defaultdict[str, set[Watch]] = defaultdict(set)
        # Watches of channel items, by sku.
        self._by_channel_sku: defaultdict[str, set[Watch]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[Pair] = set()  # changed pairs not yet read
        self._refreshing: asyncio.Task[None] | None = None
        self.open_streams = 0  # watches added and not yet removed (a metric)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add(self, watch: Watch) -> None:
        self.open_streams += 1
        for pair in watch.pairs:
            self._by_pair[pair].add(watch)
        for location in watch.locations:
            self._by_location[location].add(watch)
        for item in watch.channel_items:
            self._by_channel_sku[item.sku].add(watch)

    def remove(self, watch: Watch) -> None:
        self.open_streams -= 1
        for pair in watch.pairs:
            watchers = self._by_pair.get(pair)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._by_pair[pair]
        for location in watch.locations:
            watchers = self._by_location.get(location)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._by_location[location]
        for item in watch.channel_items:
            watchers = self._by_channel_sku.get(item.sku)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._by_channel_sku[item.sku]

    def on_changes(self, changes: Changes) -> None:
        """A change bus subscriber; any thread."""
        loop = self._loop
        if (
            loop is None
            or loop.is_closed()
            or not (
                changes.pairs
                or changes.locations
                or changes.everything
                or changes.incoming
                or changes.channels
                or changes.directory
            )
        ):
            return
        loop.call_soon_threadsafe(self._changed, changes)

    def _changed(self, changes: Changes) -> None:
        self._channels_changed(changes)
        # Changes may have been missed: every watched pair is read again. A location's
        # records: the watched pairs there (a watch's pairs at a location are in _by_pair).
        if changes.everything:
            self._pending.update(self._by_pair)
        else:
            self._pending.update(pair for pair in changes.pairs if pair in self._by_pair)
            for location in changes.locations:
                for watch in self._by_location.get(location, ()):
                    self._pending.update(watch.at(location))
        if self._pending and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    def _channels_changed(self, changes: Changes) -> None:
        """Mark the channel watches a change may touch: those of its skus, or all of them
        for a whole location, a channel, the directory or a missed change."""
        if not self._by_channel_sku:
            return
        if changes.everything or changes.locations or changes.channels or changes.directory:
            marked = {w for watches in self._by_channel_sku.values() for w in watches}
        else:
            skus = {sku for sku, _ in changes.pairs} | {sku for sku, _ in changes.incoming}
            marked = {w for sku in skus for w in self._by_channel_sku.get(sku, ())}
        for watch in marked:
            watch.mark_channels()

    async def _refresh(self) -> None:
        """Read the changed records once, into the read cache; build each pair's answer once
        per exposure; then mark and wake the watches that hold it."""
        while self._pending:
            pairs, self._pending = sorted(self._pending), set()
            read = True
            try:
                await self._run(self._availability.warm, pairs)
            except Exception:  # each watch then reads for itself
                log.exception("reading changed records for watches failed")
                read = False
            # Watches may have come and gone while the read ran.
            pairs = [pair for pair in pairs if pair in self._by_pair]
            built = self._build(pairs) if read else {}
            for pair in pairs:
                for watch in self._by_pair[pair]:
                    watch.mark(pair, built.get((pair, watch.exposure)))

    def _build(self, pairs: list[Pair]) -> dict[tuple[Pair, Exposure], Fresh]:
        """Each pair's answer for each exposure that watches it, from the read cache."""
        if self._present is None:
            return {}
        wanted: defaultdict[Exposure, list[Pair]] = defaultdict(list)
        for pair in pairs:
            for exposure in {watch.exposure for watch in self._by_pair[pair]}:
                wanted[exposure].append(pair)
        built: dict[tuple[Pair, Exposure], Fresh] = {}
        for exposure, some in wanted.items():
            views = self._availability.cached_pairs(some, exposure=exposure)
            for view in views or ():  # None: not all cached; those watches read themselves
                built[((view.sku, view.location_id), exposure)] = Fresh(
                    view, self._present(view), signature(view)
                )
        return built

    async def views(self, watch: Watch, pairs: Sequence[Pair]) -> list[AvailabilityView]:
        """The current answers for ``pairs``, from the read model."""
        return await self._read(list(pairs), exposure=watch.exposure)
