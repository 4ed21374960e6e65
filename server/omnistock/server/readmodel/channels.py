"""Channel answers kept ready: the channel directory and each (channel, sku, method) total.

- ChannelDirectory: each channel with its group resolved (ChannelRepository.view) and
  the locations that serve each method, from the location directory. Dropped on
  Changes(channels=True), directory changes and RESYNC, and read again at next use.
- ChannelTotals: per (channel, sku, method), what the channel's answer is built from:
  each contributing location's record as counted (domain.channels.contribution), the
  incoming lines still counting, and the incoming held by pre-order holds. A read takes
  the total from memory and asks the domain (channel_answer) for the answer at its
  quantity and exposure, itself kept in the total; it never sums the group's rows.

A total stands until its ``expires``: the domain's valid_until (a record going stale, a
hold lapsing, an incoming date passing), the end of the day (today's date is in the
answer), or about TOTAL_MAX_AGE_SECONDS (5 minutes, +-20% so that totals built together do
not expire together), the backstop for a change notice lost between processes
(confidence and as_of are those of the moment the total was built, within that age).
Writes drop it through the change bus: a pair of the sku at any location, incoming of
the sku, a whole location's stock, a channel or the directory (everything). A total
read before a write is never kept after it: fills compare the sku's write stamp.

Thread-safe: the event loop reads, database threads build and fill, bus threads drop.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from omnistock.server.domain.channels import (
    ChannelAnswer,
    ChannelMethod,
    ChannelView,
    Contribution,
    Incoming,
    channel_answer,
    serves,
)
from omnistock.server.domain.locations import Location
from omnistock.server.domain.stock import Exposure
from omnistock.server.service.changes import Changes
from omnistock.server.store.incoming import StoredIncoming

# A channel's directory entry older than this is read again (as the stock cache's TTL).
MAX_AGE_SECONDS = 30.0
# A total is built again after about this long with no write (the backstop for a change
# notice lost between processes), each at a time drawn within +-20%: rebuilding a total
# reads the sku's records at every location of the group, so 10,000 totals expiring
# together every 30 s took half of a process (bench.py channel).
TOTAL_MAX_AGE_SECONDS = 300.0
TOTAL_MAX_AGE_JITTER = 0.2


def total_max_age(draw: Callable[[float, float], float] = random.uniform) -> timedelta:
    """How long a new total may stand with no write: TOTAL_MAX_AGE_SECONDS +-20%, so the
    totals of a warm-up do not all expire at once."""
    spread = TOTAL_MAX_AGE_SECONDS * TOTAL_MAX_AGE_JITTER
    return timedelta(seconds=draw(TOTAL_MAX_AGE_SECONDS - spread, TOTAL_MAX_AGE_SECONDS + spread))


DEFAULT_MAX_TOTALS = 50_000
_BUILDS = itertools.count(1)
# The answers (quantity x exposure) kept per total.
MAX_ANSWERS_PER_TOTAL = 16


@dataclass(frozen=True, slots=True)
class ResolvedChannel:
    """A channel, every location of its group, and those that serve each method."""

    view: ChannelView
    serving: dict[ChannelMethod, tuple[Location, ...]]
    directory_generation: int


class ChannelDirectory:
    """Channels by id (None: no such channel), each with its group resolved."""

    def __init__(
        self,
        load: Callable[[str], ChannelView | None],
        locations: Callable[[], dict[str, Location]],
        directory_generation: Callable[[], int],
        *,
        timer: Callable[[], float],
    ) -> None:
        self._load = load
        self._locations = locations
        self._generation = directory_generation
        self._timer = timer
        self._lock = threading.Lock()
        self._views: dict[str, tuple[ResolvedChannel | None, float]] = {}
        self._epoch = 0

    def cached(self, channel_id: str) -> tuple[bool, ResolvedChannel | None]:
        """(found in memory, the channel or None when there is none). Never blocks."""
        kept = self._views.get(channel_id)
        if kept is None or self._timer() - kept[1] >= MAX_AGE_SECONDS:
            return False, None
        resolved = kept[0]
        if resolved is not None and resolved.directory_generation != self._generation():
            return False, None
        return True, resolved

    def load(self, channel_id: str) -> ResolvedChannel | None:
        """Read a channel and its group (blocking: a database thread)."""
        epoch = self._epoch
        view = self._load(channel_id)
        resolved = None
        if view is not None:
            by_id = self._locations()
            members = [by_id[i] for i in sorted(view.location_ids) if i in by_id]
            resolved = ResolvedChannel(
                view,
                {m: tuple(loc for loc in members if serves(loc, m)) for m in ChannelMethod},
                self._generation(),
            )
        with self._lock:
            if epoch == self._epoch:
                self._views[channel_id] = (resolved, self._timer())
        return resolved

    def apply(self, changes: Changes) -> None:
        if changes.channels or changes.directory or changes.everything:
            with self._lock:
                self._epoch += 1
                self._views = {}


@dataclass(slots=True)
class ChannelTotal:
    """What a channel's answers for one sku and method are built from, at ``built_at``."""

    channel: ResolvedChannel
    sku: str
    method: ChannelMethod
    # Whether any location of the group has a record or incoming line of the sku.
    known: bool
    # Each contribution as a plain tuple (the collector stops tracking those: a process
    # keeps one per location of the group for every total); see ``contributions``.
    rows: tuple[tuple[object, ...], ...]
    incoming: tuple[Incoming, ...]
    incoming_held: int
    held_until: datetime | None
    built_at: datetime
    valid_until: datetime | None
    expires: datetime
    answers: dict[tuple[int, Exposure], ChannelAnswer] = field(default_factory=dict)
    # This build's number, never reused: an answer is known by it, its quantity and its
    # exposure (what the transport keeps encoded answers by).
    stamp: int = field(default_factory=lambda: next(_BUILDS))

    @property
    def contributions(self) -> tuple[Contribution, ...]:
        return tuple(map(Contribution._make, self.rows))

    def answer(self, requested: int, exposure: Exposure) -> ChannelAnswer:
        """The domain's answer at a quantity and exposure, built once per total."""
        key = (requested, exposure)
        kept = self.answers.get(key)
        if kept is None:
            kept = channel_answer(
                self.channel.view.channel,
                self.contributions,
                incoming=self.incoming,
                incoming_held=self.incoming_held,
                requested=requested,
                now=self.built_at,
                today=today_of(self.built_at),
                exposure=exposure,
                held_until=self.held_until,
            )
            if len(self.answers) < MAX_ANSWERS_PER_TOTAL:
                self.answers[key] = kept
        return kept


def today_of(now: datetime) -> date:
    """Today in the server's reference time zone (UTC)."""
    return now.astimezone(UTC).date()


def end_of_day(now: datetime) -> datetime:
    return datetime.combine(today_of(now) + timedelta(days=1), time.min, UTC)


TotalKey = tuple[str, str, ChannelMethod]  # (channel_id, sku, method)


@dataclass(frozen=True, slots=True)
class TotalToken:
    """Taken before reading what a total is built from; given to ``fill``."""

    epoch: int
    writes: int


class ChannelTotals:
    """The totals, at most ``maxsize``, the least recently filled dropped first."""

    def __init__(self, *, maxsize: int = DEFAULT_MAX_TOTALS) -> None:
        self.enabled = maxsize > 0
        self._maxsize = max(1, maxsize)
        self._lock = threading.Lock()
        self._totals: OrderedDict[TotalKey, ChannelTotal] = OrderedDict()
        self._by_sku: dict[str, set[TotalKey]] = {}
        # Incoming lines by sku, as the incoming store gave them.
        self._incoming: dict[str, tuple[StoredIncoming, ...]] = {}
        self._epoch = 0
        self._writes = 0
        self._written: dict[str, int] = {}  # sku -> the write count when last written

    def get(self, key: TotalKey, now: datetime) -> ChannelTotal | None:
        """The total from memory while it stands at ``now``; None otherwise."""
        total = self._totals.get(key)
        if total is None or now >= total.expires:
            return None
        return total

    def token(self) -> TotalToken:
        return TotalToken(self._epoch, self._writes)

    def fill(self, total: ChannelTotal, token: TotalToken) -> None:
        """Keep a total built from reads made since ``token`` unless the sku has been
        written since."""
        if not self.enabled:
            return
        key = (total.channel.view.channel.id, total.sku, total.method)
        with self._lock:
            if token.epoch != self._epoch or self._written.get(total.sku, -1) > token.writes:
                return
            self._totals.pop(key, None)
            self._totals[key] = total
            self._by_sku.setdefault(total.sku, set()).add(key)
            while len(self._totals) > self._maxsize:
                old_key, _ = self._totals.popitem(last=False)
                self._unindex(old_key)

    def incoming(self, sku: str) -> tuple[StoredIncoming, ...] | None:
        return self._incoming.get(sku)

    def fill_incoming(self, sku: str, lines: tuple[StoredIncoming, ...], token: TotalToken) -> None:
        with self._lock:
            if token.epoch != self._epoch or self._written.get(sku, -1) > token.writes:
                return
            if len(self._incoming) >= self._maxsize:
                self._incoming.pop(next(iter(self._incoming)))
            self._incoming[sku] = lines

    def apply(self, changes: Changes) -> None:
        """A change bus subscriber: drop the totals a change may touch."""
        if changes.everything or changes.locations or changes.channels or changes.directory:
            self.clear()
            return
        skus = {sku for sku, _ in changes.pairs} | {sku for sku, _ in changes.incoming}
        if skus:
            self.drop_skus(skus, incoming={sku for sku, _ in changes.incoming})

    def drop_skus(self, skus: Iterable[str], *, incoming: set[str]) -> None:
        with self._lock:
            self._writes += 1
            if len(self._written) > 4 * self._maxsize:  # bounded: forget by starting over
                self._clear()
                return
            for sku in skus:
                self._written[sku] = self._writes
                for key in self._by_sku.pop(sku, ()):
                    self._totals.pop(key, None)
                if sku in incoming:
                    self._incoming.pop(sku, None)

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._epoch += 1
        self._writes += 1
        self._totals.clear()
        self._by_sku.clear()
        self._incoming.clear()
        self._written.clear()

    def _unindex(self, key: TotalKey) -> None:
        keys = self._by_sku.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_sku[key[1]]

    def __len__(self) -> int:
        return len(self._totals)
