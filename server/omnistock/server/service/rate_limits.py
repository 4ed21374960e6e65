"""Rate limits shared by every process: leases from a shared bucket, spent locally.

A call spends a token of its process's lease for its key when there is one (no round
trip: the hot path). With none, it asks the shared bucket (``take``: the database in the
executor, or Redis over asyncio) for a lease of ``lease_size`` tokens, or as many as
there are calls waiting for one if more: one request at a time per key and process, which
every call waiting meanwhile shares, so a call waiting for a lease holds neither the event
loop nor other keys' calls. An empty bucket's answer (when the next token comes) is
remembered: calls refused until then cost no round trip.

If the shared bucket cannot be reached (an error, or no answer within ``timeout``), the
process falls back to a bucket of its own for ``retry_seconds`` (each process then allows
the key's full rate: fail open, as before shared limits), logs a warning once per outage
and counts the failure (``failures``); then it asks the shared bucket again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from omnistock.server.domain.rate_limits import Grant, TokenBuckets, lease_size

log = logging.getLogger("omnistock.rate_limits")

TakeShared = Callable[[str, float, int, int], Awaitable[Grant]]
# The most keys whose leases a process keeps; past it they start over (leases dropped are
# spent tokens, so the limit only tightens).
MAX_KEYS = 10_000
# A call shares at most this many lease requests with others before it is refused.
MAX_ROUNDS = 4


class _Unreachable(Exception):
    """The shared bucket did not answer."""


@dataclass(slots=True)
class _Lease:
    tokens: int = 0
    refused_until: float = 0.0
    waiting: int = 0
    fetch: asyncio.Future[None] | None = None


class SharedRateLimits:
    """``store`` names the shared bucket (database or redis) for logs and metrics."""

    def __init__(
        self,
        take: TakeShared,
        *,
        store: str,
        timeout: float = 0.25,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._take = take
        self.store = store
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._local = TokenBuckets(clock=clock)
        self._down_until = 0.0
        self._failing = False
        # Counters for the metrics endpoint.
        self.round_trips = 0
        self.failures = 0

    @property
    def shared(self) -> bool:
        """False while the process uses its own buckets, the shared one unreachable."""
        return self._clock() >= self._down_until

    def take_now(self, key_id: str) -> float | None:
        """Without waiting: 0.0 for a token spent from the lease; the seconds to wait when
        the shared bucket was lately found empty; None when a lease must be asked for."""
        lease = self._leases.get(key_id)
        if lease is None:
            return None
        if lease.tokens > 0:
            lease.tokens -= 1
            return 0.0
        wait = lease.refused_until - self._clock()
        return wait if wait > 0 else None

    async def take(self, key_id: str, rate: float, burst: int) -> float:
        """Spend one token and answer 0.0, or answer the seconds until the next one."""
        if self._clock() < self._down_until:
            return self._local.take(key_id, rate, burst)
        lease = self._leases.get(key_id)
        if lease is None:
            if len(self._leases) >= MAX_KEYS:
                self._leases.clear()
            lease = self._leases[key_id] = _Lease()
        lease.waiting += 1
        try:
            for _ in range(MAX_ROUNDS):
                quick = self.take_now(key_id)
                if quick is not None:
                    return quick
                if lease.fetch is None:
                    want = min(burst, max(lease_size(rate, burst), lease.waiting))
                    lease.fetch = asyncio.ensure_future(
                        self._fetch(key_id, lease, rate, burst, want)
                    )
                    lease.fetch.add_done_callback(_retrieved)
                try:
                    # Shielded: a caller that goes away does not end a request others share.
                    await asyncio.shield(lease.fetch)
                except _Unreachable:
                    return self._local.take(key_id, rate, burst)
            # Others spent every lease this call waited for: try again very soon.
            quick = self.take_now(key_id)
            return 1.0 / rate if quick is None else quick
        finally:
            lease.waiting -= 1

    async def _fetch(self, key_id: str, lease: _Lease, rate: float, burst: int, want: int) -> None:
        try:
            grant = await asyncio.wait_for(self._take(key_id, rate, burst, want), self._timeout)
        except Exception as error:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning(
                    "the shared rate-limit store (%s) is unreachable (%s): each process"
                    " limits keys on its own for %.1f s, then tries again",
                    self.store, type(error).__name__ if isinstance(error, TimeoutError)
                    else error, self._retry_seconds,
                )  # fmt: skip
            self._down_until = self._clock() + self._retry_seconds
            raise _Unreachable from error
        finally:
            lease.fetch = None
        self.round_trips += 1
        if self._failing:
            self._failing = False
            log.warning("the shared rate-limit store (%s) answers again", self.store)
        lease.tokens += grant.granted
        if grant.granted == 0:
            lease.refused_until = self._clock() + grant.retry_after


def _retrieved(fetch: asyncio.Future[None]) -> None:
    """Mark a lease request's failure seen, should every caller waiting for it have gone."""
    if not fetch.cancelled():
        fetch.exception()
