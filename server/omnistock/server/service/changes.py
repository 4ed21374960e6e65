"""The change bus: every write says what it changed, and everything that keeps a copy
(the read cache, the location directory, watch streams) hears it.

- In process, ``publish`` calls each subscriber at once, before the writer returns.
- Across processes and replicas, a transport carries the same changes: ``ChannelTransport``
  encodes them as payloads and sends them over one of the store's change channels
  (store/change_bus.py): PostgreSQL LISTEN/NOTIFY, or on SQLite a change log table that
  every process polls. A sender thread gathers what is published for a few milliseconds
  and sends it in batches; the channel's receiver thread hands other processes' changes
  to the bus. A write in one process reaches the others within the sender's linger
  (5 ms) plus the receiver's wait (NOTIFY: at once; the SQLite log: the poll interval,
  20 ms): docs/benchmarks.md has the figures.

A change names (sku, location_id) pairs, whole locations (a snapshot replaced their
stock), incoming supply of (sku, location_id) pairs, the location directory, or the
channels (location groups and channels themselves). A receiver that may have missed changes (its
connection to PostgreSQL was made again, or its polls of the change log failed for a
while) delivers ``RESYNC`` to its own process: every copy is dropped and read again. A
batch that fails to send is sent again with the next one, or after a second, five tries
in all; the read cache's TTL (30 s) is the backstop for one dropped after that.

With PostgreSQL read replicas, a payload also carries the primary's WAL position after the
writes it names ("w"), and the bus tells the replica set (``Positions``, store/replicas.py)
of it, and of this process's own writes, before any copy is dropped: a read that follows
goes to a replica that has replayed the write, or to the primary.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from omnistock.server.store.change_bus import MAX_PAYLOAD_BYTES, ChangeChannel

log = logging.getLogger("omnistock.changes")

Pair = tuple[str, str]  # (sku, location_id)


@dataclass(frozen=True)
class Changes:
    pairs: frozenset[Pair] = frozenset()
    locations: frozenset[str] = frozenset()  # every record of these locations
    directory: bool = False  # locations themselves were created or changed
    # Changes may have been missed: forget every copy. Delivered in a process, never sent.
    everything: bool = False
    # Incoming supply lines of these (sku, location_id) pairs.
    incoming: frozenset[Pair] = frozenset()
    channels: bool = False  # location groups or channels were created or changed

    @classmethod
    def of_pairs(cls, pairs: Iterable[Pair]) -> Changes:
        return cls(pairs=frozenset(pairs))

    def __bool__(self) -> bool:
        return bool(
            self.pairs
            or self.locations
            or self.directory
            or self.incoming
            or self.channels
            or self.everything
        )

    def merge(self, other: Changes) -> Changes:
        return Changes(
            self.pairs | other.pairs,
            self.locations | other.locations,
            self.directory or other.directory,
            self.everything or other.everything,
            self.incoming | other.incoming,
            self.channels or other.channels,
        )


RESYNC = Changes(everything=True)


Subscriber = Callable[[Changes], None]


class Transport(Protocol):
    def start(self, deliver: Callable[[Changes], None]) -> None: ...
    def send(self, changes: Changes) -> None: ...
    def close(self) -> None: ...


class Positions(Protocol):
    """Where reads may go after writes (store.replicas.ReplicaSet): told of this process's
    writes (``wrote``, before anything hears of them; ``reached`` once the primary's WAL
    position after them is known, ``mark`` read before asking it) and of other processes'
    (``heard``, before their changes are delivered)."""

    def wrote(self) -> int: ...
    def mark(self) -> int: ...
    def reached(self, mark: int, position: int) -> None: ...
    def heard(self, position: int) -> None: ...


class ChangeBus:
    """Thread-safe. Subscribers run on the publishing thread (or the receiver thread, for
    other processes' changes): they must be quick and must not block."""

    def __init__(
        self, transport: Transport | None = None, *, positions: Positions | None = None
    ) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._transport = transport
        self._positions = positions

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    def start(self) -> None:
        if self._transport is not None:
            self._transport.start(self._deliver)

    def publish(self, changes: Changes) -> None:
        """Tell this process at once, and the others through the transport."""
        if not changes:
            return
        if self._positions is not None:
            self._positions.wrote()
        self._deliver(changes)
        if self._transport is not None:
            self._transport.send(changes)

    def _deliver(self, changes: Changes) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(changes)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("change subscriber failed")

    @property
    def lag_seconds(self) -> float | None:
        """Seconds between another process sending the last change this one received and
        its arrival (None before any)."""
        return getattr(self._transport, "lag_seconds", None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def encode(origin: str, changes: Changes, position: int | None = None) -> list[str]:
    """JSON payloads of at most MAX_PAYLOAD_BYTES each, together saying ``changes``
    (``everything`` is never sent: it is for the process that missed changes).
    ``position``: the primary's WAL position after the writes, in bytes (PostgreSQL)."""
    payloads: list[str] = []
    # "t": when it was sent, for the receiver's lag figure; "w": the WAL position.
    sent = round(time.time(), 3)
    head: dict[str, Any] = {"o": origin, "t": sent}
    if position is not None:
        head["w"] = position
    body = dict(head)
    if changes.directory:
        body["d"] = 1
    if changes.channels:
        body["c"] = 1
    room = MAX_PAYLOAD_BYTES - len(json.dumps(body)) - 20  # the lists' brackets and keys

    def add(field: str, item: Any) -> None:
        nonlocal body, room
        length = len(json.dumps(item, separators=(",", ":"))) + 1
        if length > room and ("l" in body or "p" in body or "i" in body):  # full: next payload
            payloads.append(json.dumps(body, separators=(",", ":")))
            body = dict(head)
            room = MAX_PAYLOAD_BYTES - len(json.dumps(body)) - 20
        body.setdefault(field, []).append(item)
        room -= length

    for location in sorted(changes.locations):
        add("l", location)
    for sku, location in sorted(changes.pairs):
        add("p", [sku, location])
    for sku, location in sorted(changes.incoming):
        add("i", [sku, location])
    if any(key in body for key in ("l", "p", "i", "d", "c")):
        payloads.append(json.dumps(body, separators=(",", ":")))
    return payloads


def sent_at(payload: str) -> float | None:
    """When a payload was sent (None for one from before the time was sent)."""
    sent = json.loads(payload).get("t")
    return float(sent) if isinstance(sent, int | float) else None


def wal_position(payload: str) -> int | None:
    """The primary's WAL position a payload carries (None: sent without one)."""
    position = json.loads(payload).get("w")
    return position if isinstance(position, int) else None


def decode(payload: str) -> tuple[str, Changes]:
    data = json.loads(payload)
    return data["o"], Changes(
        pairs=frozenset((sku, location) for sku, location in data.get("p", ())),
        locations=frozenset(data.get("l", ())),
        directory=bool(data.get("d")),
        incoming=frozenset((sku, location) for sku, location in data.get("i", ())),
        channels=bool(data.get("c")),
    )


@dataclass
class _Batcher:
    """A sender thread: gathers published changes for ``linger`` seconds, then sends. A
    batch that fails is kept and sent with the next one, or ``retry`` seconds later, for
    ``attempts`` tries in all; then it is dropped (logged), and the other processes' read
    caches forget it only at their TTL."""

    send: Callable[[Changes], None]
    linger: float = 0.005
    retry: float = 1.0
    attempts: int = 5
    _queue: queue.SimpleQueue[Changes | None] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="omnistock-bus-send", daemon=True)
        self._thread.start()

    def put(self, changes: Changes) -> None:
        self._queue.put(changes)

    def _run(self) -> None:
        unsent = Changes()
        failures = 0
        while True:
            try:
                first = self._queue.get(timeout=self.retry if unsent else None)
            except queue.Empty:
                first = Changes()  # nothing new: try the failed batch again
            stop = first is None
            merged = unsent if first is None else unsent.merge(first)
            deadline = time.monotonic() + self.linger
            while not stop and (left := deadline - time.monotonic()) > 0:
                try:
                    more = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                merged = merged.merge(more)
            unsent = Changes()
            if merged:
                try:
                    self.send(merged)
                    failures = 0
                except Exception:
                    failures += 1
                    if failures < self.attempts:
                        log.exception("sending changes to other processes failed; trying again")
                        unsent = merged
                    else:
                        log.exception(
                            "sending changes to other processes failed %d times; dropped (other"
                            " processes' read caches forget them at their TTL)",
                            failures,
                        )
                        failures = 0
            if stop:
                return

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)


class ChannelTransport:
    """Changes between processes over one of the store's change channels: published
    changes go out in batches (``_Batcher``), and payloads from other processes come in
    as changes; a channel that may have missed some delivers RESYNC."""

    def __init__(self, channel: ChangeChannel, *, positions: Positions | None = None) -> None:
        self._channel = channel
        self._positions = positions
        self.origin = channel.origin
        self._batcher = _Batcher(self._send)
        # Seconds from another process sending the last change received to its arrival.
        self.lag_seconds: float | None = None

    def start(self, deliver: Callable[[Changes], None]) -> None:
        def receive(payload: str) -> None:
            try:
                origin, changes = decode(payload)
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a change notice that does not parse")
                return
            if origin != self.origin:
                position = wal_position(payload)
                if position is not None and self._positions is not None:
                    self._positions.heard(position)
                deliver(changes)
                sent = sent_at(payload)
                if sent is not None:
                    self.lag_seconds = max(0.0, time.time() - sent)

        def missed() -> None:
            # Notices may be lost: reads use the primary until its position is known.
            mark = self._positions.wrote() if self._positions is not None else 0
            deliver(RESYNC)
            try:
                self._position(mark)
            except Exception:
                log.exception("reading the primary's WAL position failed")

        self._channel.start(receive, missed)
        self._batcher.start()

    def send(self, changes: Changes) -> None:
        self._batcher.put(changes)

    def _position(self, mark: int | None = None) -> int | None:
        """The primary's WAL position now (None on SQLite), told to the replica set as
        reached by this process's writes up to ``mark`` (read before asking)."""
        if mark is None and self._positions is not None:
            mark = self._positions.mark()
        position = self._channel.position()
        if position is not None and self._positions is not None and mark is not None:
            self._positions.reached(mark, position)
        return position

    def _send(self, changes: Changes) -> None:
        self._channel.send(encode(self.origin, changes, self._position()))

    def close(self) -> None:
        self._batcher.close()  # what was published goes out first
        self._channel.close()
