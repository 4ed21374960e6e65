"""PostgreSQL read replicas: which database a read goes to.

Reads that may be served a moment late (the read model's misses, searches, exports) go
to a streaming replica in rotation; everything else uses the primary. Two rules keep the
answers true:

- **Lag bound.** A watcher thread per replica compares, every ``interval`` seconds, the
  primary's ``pg_current_wal_lsn()`` with the replica's ``pg_last_wal_replay_lsn()``. A
  replica's lag is how long ago the primary first showed a WAL position the replica has
  not replayed yet (0 when it has replayed all the primary had shown): it grows while
  the primary writes and the replica does not replay, whatever the clocks say, and stays
  0 on an idle pair. A replica lagging more than ``max_lag`` seconds, unreachable, or no
  longer in recovery (promoted) is out of rotation until a check finds it within the
  bound again. With none in rotation, reads go to the primary.
- **Read your writes (the LSN rule).** Each change notice carries the primary's WAL
  position after the write (``heard``); this process's own writes count from the moment
  they are published (``wrote``) until the change bus's sender has read the primary's
  position after them (``reached``). A read goes to a replica only once that replica has
  replayed the newest such position, else to the primary; while a write of this process
  waits for its position, reads use the primary. With the read cache's generation check
  (a fill is dropped if any change arrived while it was read), nothing older than a
  notice that arrived before the read is cached.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

log = logging.getLogger("omnistock.replicas")

DEFAULT_MAX_LAG_SECONDS = 1.0
CHECK_INTERVAL_SECONDS = 0.15
# A WAL position as a number of bytes (pg_lsn minus '0/0').
PRIMARY_POSITION = "SELECT (pg_current_wal_lsn() - '0/0')::bigint"
REPLAY_POSITION = "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::bigint"


def conninfo(engine: Engine) -> str:
    """A libpq connection string for the engine's database."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """What the last check of a replica found, for metrics and readiness."""

    name: str  # host:port/database
    in_rotation: bool
    lag_seconds: float | None  # None: not measured (unreachable)
    reads: int  # reads served since start


class Replica:
    """One read replica: its engine and what its watcher last measured."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        url = engine.url
        self.name = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        self.in_rotation = False
        self.lag_seconds: float | None = None
        self.replayed = -1  # the newest replay position seen (bytes)
        self.reads = 0
        self._lock = threading.Lock()

    def saw_replayed(self, position: int) -> None:
        with self._lock:
            self.replayed = max(self.replayed, position)

    def state(self) -> ReplicaState:
        return ReplicaState(self.name, self.in_rotation, self.lag_seconds, self.reads)


class ReplicaSet:
    """The primary and its read replicas (possibly none: then every read is the primary's).
    Thread-safe; ``start`` runs the watchers, ``close`` stops them."""

    def __init__(
        self,
        primary: Engine,
        replicas: Sequence[Engine] = (),
        *,
        max_lag: float = DEFAULT_MAX_LAG_SECONDS,
        interval: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.primary = primary
        self.replicas = [Replica(engine) for engine in replicas]
        self.max_lag = max_lag
        self.interval = interval
        self.primary_reads = 0
        self._turn = itertools.count()
        self._lock = threading.Lock()
        # The LSN rule: the newest WAL position a read must see, and this process's
        # writes published (``_written``) against those whose position is known.
        self._required = 0
        self._written = 0
        self._placed = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Calls when a replica enters or leaves rotation (for tests and logs).
        self.on_change: Callable[[Replica], None] | None = None

    # -- the LSN rule (called by the change bus)

    def wrote(self) -> int:
        """A write of this process is about to be published: until a position after it
        is known, reads use the primary. Returns the mark to pass to ``reached``."""
        with self._lock:
            self._written += 1
            return self._written

    def mark(self) -> int:
        """The writes published so far (read before asking the primary its position)."""
        return self._written

    def reached(self, mark: int, position: int) -> None:
        """The primary was at ``position`` after every write up to ``mark``."""
        with self._lock:
            self._required = max(self._required, position)
            self._placed = max(self._placed, mark)

    def heard(self, position: int) -> None:
        """Another process's write is at ``position``: reads must see it."""
        with self._lock:
            self._required = max(self._required, position)

    # -- choosing

    def choose(self) -> tuple[Replica | None, int]:
        """(a replica, the position it must have replayed) for the next read; (None, 0):
        the primary. A replica whose last check already showed the position comes first;
        else the next in rotation, for the caller to check (``Replica.saw_replayed``)."""
        if not self.replicas or self._placed < self._written:
            return None, 0
        required = self._required
        rotation = [r for r in self.replicas if r.in_rotation]
        if not rotation:
            return None, 0
        start = next(self._turn)
        for step in range(len(rotation)):
            replica = rotation[(start + step) % len(rotation)]
            if replica.replayed >= required:
                return replica, 0
        return rotation[start % len(rotation)], required

    def failed(self, replica: Replica) -> None:
        """A read on ``replica`` failed: out of rotation until its watcher finds it well."""
        if replica.in_rotation:
            log.warning("read replica %s failed a read: out of rotation", replica.name)
            replica.in_rotation = False
            if self.on_change is not None:
                self.on_change(replica)

    def states(self) -> list[ReplicaState]:
        return [replica.state() for replica in self.replicas]

    # -- the watchers

    def start(self) -> None:
        """Check every replica once (so reads use those in rotation at once), then watch
        each on a thread of its own."""
        for replica in self.replicas:
            watcher = _Watcher(self, replica)
            watcher.check()
            thread = threading.Thread(
                target=self._watch, args=(watcher,), name="omnistock-replica-watch", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _watch(self, watcher: _Watcher) -> None:
        with watcher:
            while not self._stopping.wait(self.interval):
                watcher.check()

    def close(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for replica in self.replicas:
            replica.engine.dispose()


class _Watcher:
    """One replica's checks: a connection to the primary and one to the replica, made
    again after a failure, and the primary's positions of the last while."""

    def __init__(self, replicas: ReplicaSet, replica: Replica) -> None:
        self._set = replicas
        self._replica = replica
        self._primary_info = conninfo(replicas.primary)
        self._replica_info = conninfo(replica.engine)
        self._primary: psycopg.Connection[Any] | None = None
        self._standby: psycopg.Connection[Any] | None = None
        # (monotonic time, position) each time the primary's position was seen to move.
        self._seen: deque[tuple[float, int]] = deque()
        self._pruned = False  # whether the first position seen was dropped
        self._complained = False

    def __enter__(self) -> _Watcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        for connection in (self._primary, self._standby):
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()

    def _connect(self, info: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            info, autocommit=True, connect_timeout=2, application_name="omnistock-replica-watch"
        )

    def check(self) -> None:
        now = time.monotonic()
        try:
            if self._primary is None or self._primary.closed:
                self._primary = self._connect(self._primary_info)
            row = self._primary.execute(PRIMARY_POSITION).fetchone()
            assert row is not None
            self._note_primary(now, int(row[0]))
        except Exception:  # a primary that does not answer: judge on what was seen
            if self._primary is not None:
                with contextlib.suppress(Exception):
                    self._primary.close()
        lag: float | None
        try:
            if self._standby is None or self._standby.closed:
                self._standby = self._connect(self._replica_info)
            row = self._standby.execute(REPLAY_POSITION).fetchone()
            assert row is not None
            recovering, replayed = bool(row[0]), row[1]
            if not recovering or replayed is None:
                raise ValueError("not a streaming replica (not in recovery)")
            self._replica.saw_replayed(int(replayed))
            lag = self._lag(time.monotonic(), int(replayed))
            self._complained = False
        except Exception as error:
            if self._standby is not None:
                with contextlib.suppress(Exception):
                    self._standby.close()
            if not self._complained:
                log.warning("read replica %s: %s", self._replica.name, str(error).split("\n")[0])
                self._complained = True
            lag = None
        self._replica.lag_seconds = lag
        self._place(lag is not None and lag <= self._set.max_lag)

    def _note_primary(self, now: float, position: int) -> None:
        if not self._seen or position > self._seen[-1][1]:
            self._seen.append((now, position))
        # What is older than the bound (and a margin) is kept as one sample only.
        horizon = now - self._set.max_lag - 10 * self._set.interval
        while len(self._seen) > 1 and self._seen[1][0] < horizon:
            self._seen.popleft()
            self._pruned = True

    def _lag(self, now: float, replayed: int) -> float:
        """Seconds since the primary first showed a position the replica lacks; infinite
        when it lacks the first position this watcher saw (it may be far behind)."""
        for index, (seen_at, position) in enumerate(self._seen):
            if position > replayed:
                return math.inf if index == 0 and not self._pruned else now - seen_at
        return 0.0

    def _place(self, within: bool) -> None:
        replica = self._replica
        if within == replica.in_rotation:
            return
        replica.in_rotation = within
        if within:
            log.info("read replica %s in rotation", replica.name)
        else:
            log.warning(
                "read replica %s out of rotation (lag %s, bound %gs)",
                replica.name,
                "unknown" if replica.lag_seconds is None else f"{replica.lag_seconds:.2f}s",
                self._set.max_lag,
            )
        if self._set.on_change is not None:
            self._set.on_change(replica)
