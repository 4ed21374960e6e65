"""The change bus: every write says what it changed, and everything that keeps a copy
(the read cache, the location directory, watch streams) hears it.

- In process, ``publish`` calls each subscriber at once, before the writer returns.
- Across processes and replicas, a transport carries the same changes: PostgreSQL
  LISTEN/NOTIFY (``PostgresNotify``), or on SQLite a change log table that every
  process polls (``SqliteChangeLog``). A sender thread gathers what is published for a
  few milliseconds and sends it in batches; a receiver thread hands other processes'
  changes to the bus. A write in one process reaches the others within the sender's
  linger (5 ms) plus the receiver's wait (NOTIFY: at once; the SQLite log: the poll
  interval, 20 ms): docs/benchmarks.md has the figures.

A change names (sku, location_id) pairs, whole locations (a snapshot replaced their
stock), or the location directory. A receiver that may have missed changes (its
connection to PostgreSQL was made again, or its polls of the change log failed for a
while) delivers ``RESYNC`` to its own process: every copy is dropped and read again. A
batch that fails to send is sent again with the next one, or after a second, five tries
in all; the read cache's TTL (30 s) is the backstop for one dropped after that.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine

log = logging.getLogger("omnistock.changes")

Pair = tuple[str, str]  # (sku, location_id)
CHANNEL = "omnistock_changes"
# NOTIFY payloads must stay under 8,000 bytes.
MAX_PAYLOAD_BYTES = 7_000


@dataclass(frozen=True)
class Changes:
    pairs: frozenset[Pair] = frozenset()
    locations: frozenset[str] = frozenset()  # every record of these locations
    directory: bool = False  # locations themselves were created or changed
    # Changes may have been missed: forget every copy. Delivered in a process, never sent.
    everything: bool = False

    @classmethod
    def of_pairs(cls, pairs: Iterable[Pair]) -> Changes:
        return cls(pairs=frozenset(pairs))

    def __bool__(self) -> bool:
        return bool(self.pairs or self.locations or self.directory or self.everything)

    def merge(self, other: Changes) -> Changes:
        return Changes(
            self.pairs | other.pairs,
            self.locations | other.locations,
            self.directory or other.directory,
            self.everything or other.everything,
        )


RESYNC = Changes(everything=True)


Subscriber = Callable[[Changes], None]


class Transport(Protocol):
    def start(self, deliver: Callable[[Changes], None]) -> None: ...
    def send(self, changes: Changes) -> None: ...
    def close(self) -> None: ...


class ChangeBus:
    """Thread-safe. Subscribers run on the publishing thread (or the receiver thread, for
    other processes' changes): they must be quick and must not block."""

    def __init__(self, transport: Transport | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._transport = transport

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


def encode(origin: str, changes: Changes) -> list[str]:
    """JSON payloads of at most MAX_PAYLOAD_BYTES each, together saying ``changes``
    (``everything`` is never sent: it is for the process that missed changes)."""
    payloads: list[str] = []
    # "t": when it was sent, for the receiver's lag figure.
    sent = round(time.time(), 3)
    body: dict[str, Any] = (
        {"o": origin, "t": sent, "d": 1} if changes.directory else {"o": origin, "t": sent}
    )
    room = MAX_PAYLOAD_BYTES - len(json.dumps(body)) - 20  # the lists' brackets and keys

    def add(field: str, item: Any) -> None:
        nonlocal body, room
        length = len(json.dumps(item, separators=(",", ":"))) + 1
        if length > room and ("l" in body or "p" in body):  # full: start the next payload
            payloads.append(json.dumps(body, separators=(",", ":")))
            body = {"o": origin, "t": sent}
            room = MAX_PAYLOAD_BYTES - len(json.dumps(body)) - 20
        body.setdefault(field, []).append(item)
        room -= length

    for location in sorted(changes.locations):
        add("l", location)
    for sku, location in sorted(changes.pairs):
        add("p", [sku, location])
    if "l" in body or "p" in body or "d" in body:
        payloads.append(json.dumps(body, separators=(",", ":")))
    return payloads


def sent_at(payload: str) -> float | None:
    """When a payload was sent (None for one from before the time was sent)."""
    sent = json.loads(payload).get("t")
    return float(sent) if isinstance(sent, int | float) else None


def decode(payload: str) -> tuple[str, Changes]:
    data = json.loads(payload)
    return data["o"], Changes(
        pairs=frozenset((sku, location) for sku, location in data.get("p", ())),
        locations=frozenset(data.get("l", ())),
        directory=bool(data.get("d")),
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


class PostgresNotify:
    """Changes over PostgreSQL LISTEN/NOTIFY, on the channel ``omnistock_changes``."""

    def __init__(self, conninfo: str, *, origin: str | None = None) -> None:
        self._conninfo = conninfo
        self.origin = origin or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._batcher = _Batcher(self._send)
        self._sender: psycopg.Connection[Any] | None = None
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self.lag_seconds: float | None = None

    def start(self, deliver: Callable[[Changes], None]) -> None:
        ready = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, args=(deliver, ready), name="omnistock-bus-listen", daemon=True
        )
        self._listener.start()
        ready.wait(timeout=10)
        self._batcher.start()

    def send(self, changes: Changes) -> None:
        self._batcher.put(changes)

    def _send(self, changes: Changes) -> None:
        if self._sender is None or self._sender.closed:
            self._sender = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with self._sender.cursor() as cursor:
                for payload in encode(self.origin, changes):
                    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except Exception:
            self._sender.close()  # the next try connects afresh
            raise

    def _listen(self, deliver: Callable[[Changes], None], ready: threading.Event) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=f"omnistock-listen-{os.getpid()}",
                    # A connection that died without a word is noticed within about 25 s.
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    # Notices sent before this LISTEN (while a connection was down, or while
                    # the first one was being made) never arrive: start afresh.
                    deliver(RESYNC)
                    ready.set()
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            try:
                                origin, changes = decode(notice.payload)
                            except (ValueError, KeyError, TypeError):
                                log.warning("ignored a change notice that does not parse")
                                continue
                            if origin != self.origin:
                                deliver(changes)
                                self.lag_seconds = _lag(notice.payload)
            except Exception:
                ready.set()
                if not self._stopping.is_set():
                    log.exception("listening for changes failed; reconnecting")
                    time.sleep(1)

    def close(self) -> None:
        self._stopping.set()
        self._batcher.close()
        if self._listener is not None:
            self._listener.join(timeout=5)
        if self._sender is not None:
            self._sender.close()


class SqliteChangeLog:
    """Changes through the ``change_log`` table, which every process polls."""

    KEEP_SECONDS = 60.0

    def __init__(
        self, engine: Engine, *, poll_seconds: float = 0.02, origin: str | None = None
    ) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self.origin = origin or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._batcher = _Batcher(self._send)
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._pruned = 0.0
        self.lag_seconds: float | None = None

    def _connect(self) -> Any:
        return self._engine.raw_connection()

    def start(self, deliver: Callable[[Changes], None]) -> None:
        pooled = self._connect()
        try:
            row = pooled.driver_connection.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM change_log"
            ).fetchone()
        finally:
            pooled.close()
        self._poller = threading.Thread(
            target=self._run, args=(deliver, row[0]), name="omnistock-bus-poll", daemon=True
        )
        self._poller.start()
        self._batcher.start()

    def send(self, changes: Changes) -> None:
        self._batcher.put(changes)

    def _send(self, changes: Changes) -> None:
        now = time.time()
        pooled = self._connect()
        try:
            connection: Any = pooled.driver_connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "INSERT INTO change_log (origin, payload, created_at) VALUES (?, ?, ?)",
                    [(self.origin, p, now) for p in encode(self.origin, changes)],
                )
                if now - self._pruned > 10:
                    connection.execute(
                        "DELETE FROM change_log WHERE created_at < ?", (now - self.KEEP_SECONDS,)
                    )
                    self._pruned = now
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            pooled.close()

    def _run(self, deliver: Callable[[Changes], None], after: int) -> None:
        pooled = self._connect()
        connection: Any = pooled.driver_connection
        try:
            failed = False
            while not self._stopping.wait(self._poll):
                try:
                    rows = connection.execute(
                        "SELECT seq, origin, payload FROM change_log WHERE seq > ? ORDER BY seq",
                        (after,),
                    ).fetchall()
                except Exception:
                    log.exception("polling the change log failed")
                    failed = True
                    continue
                if failed:  # rows older than KEEP_SECONDS may have gone meanwhile
                    deliver(RESYNC)
                    failed = False
                for seq, origin, payload in rows:
                    after = seq
                    if origin != self.origin:
                        deliver(decode(payload)[1])
                        self.lag_seconds = _lag(payload)
        finally:
            pooled.close()

    def close(self) -> None:
        self._stopping.set()
        self._batcher.close()
        if self._poller is not None:
            self._poller.join(timeout=5)


def _lag(payload: str) -> float | None:
    sent = sent_at(payload)
    return None if sent is None else max(0.0, time.time() - sent)


def change_transport(engine: Engine, poll_seconds: float = 0.02) -> Transport:
    """The transport for the engine's database: LISTEN/NOTIFY on PostgreSQL, the polled
    change log on SQLite."""
    if engine.dialect.name == "postgresql":
        url = engine.url.set(drivername="postgresql")
        return PostgresNotify(url.render_as_string(hide_password=False))
    return SqliteChangeLog(engine, poll_seconds=poll_seconds)
