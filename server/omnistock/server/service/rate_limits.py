"""Rate limits shared by every process: leases from a shared bucket, spent locally.

A call spends a token of its process's lease for its key when there is one (no round
trip: the hot path); once half a lease or less is left, the next lease is asked for in the
background, so a key used steadily below its rate seldom waits. With none, a call waits in
a queue for the key's next lease: one request at a time per key and process asks the
shared bucket (``take``: the database in the executor, or Redis over asyncio) for
``lease_size`` tokens, or one for each call waiting if more, and hands them to the waiting
calls in the order they came; what is left is the process's lease (so a process holds at
most one lease and a half: half a lease left when the next is asked for). A call waiting for a lease holds neither the event loop nor other keys'
calls. An empty bucket's answer (when the next token comes) is remembered: calls refused
until then cost no round trip.

If the shared bucket cannot be reached (an error, or no answer within ``timeout``), the
process falls back to buckets of its own for ``retry_seconds`` (each begun with a lease's
worth of tokens, then refilled at the key's rate: each process allows the key's rate, fail
open, as before shared limits), logs a warning once per outage and counts the failure
(``failures``); then it asks the shared bucket again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from omnistock.server.domain.rate_limits import Grant, TokenBuckets, lease_size

log = logging.getLogger("omnistock.rate_limits")

TakeShared = Callable[[str, float, int, int], Awaitable[Grant]]
# The most keys whose leases a process keeps; past it they start over (leases dropped are
# spent tokens, so the limit only tightens).
MAX_KEYS = 10_000


class _Unreachable(Exception):
    """The shared bucket did not answer."""


@dataclass(slots=True)
class _Lease:
    size: int
    tokens: int = 0
    refused_until: float = 0.0
    # Calls waiting for a token of the next lease, served in the order they came.
    queue: deque[asyncio.Future[float]] = field(default_factory=deque)
    fetch: asyncio.Task[None] | None = None


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

    def take_now(self, key_id: str, rate: float, burst: int) -> float | None:
        """Without waiting: 0.0 for a token spent from the lease (once half a lease or less
        is left, the next is asked for in the background); the seconds to wait when the
        shared bucket was lately found empty; None when a lease must be waited for."""
        lease = self._leases.get(key_id)
        if lease is None:
            return None
        if lease.tokens > 0:
            lease.tokens -= 1
            if lease.tokens <= lease.size // 2 and lease.fetch is None and self.shared:
                lease.fetch = asyncio.ensure_future(
                    self._serve(key_id, lease, rate, burst, ahead=True)
                )
            return 0.0
        wait = lease.refused_until - self._clock()
        return wait if wait > 0 else None

    async def take(self, key_id: str, rate: float, burst: int) -> float:
        """Spend one token and answer 0.0, or answer the seconds until the next one."""
        if self._clock() < self._down_until:
            return self._fallback(key_id, rate, burst)
        quick = self.take_now(key_id, rate, burst)
        if quick is not None:
            return quick
        lease = self._leases.get(key_id)
        if lease is None:
            if len(self._leases) >= MAX_KEYS:
                self._leases.clear()
            lease = self._leases[key_id] = _Lease(size=lease_size(rate, burst))
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        lease.queue.append(waiter)
        if lease.fetch is None:
            lease.fetch = asyncio.ensure_future(self._serve(key_id, lease, rate, burst))
        try:
            return await waiter
        except _Unreachable:
            return self._fallback(key_id, rate, burst)

    def _fallback(self, key_id: str, rate: float, burst: int) -> float:
        """The process's own bucket for the key, begun with a lease's worth of tokens (not
        the burst: a short outage then lets a key little more than its rate through each
        process)."""
        return self._local.take(key_id, rate, burst, start=lease_size(rate, burst))

    async def _serve(
        self, key_id: str, lease: _Lease, rate: float, burst: int, *, ahead: bool = False
    ) -> None:
        """Ask the shared bucket for leases while calls wait (and once ``ahead`` of need):
        each lease goes to the waiting calls first, in order, and what is left to the
        calls that come later."""
        try:
            while ahead or lease.queue:
                ahead = False
                want = min(burst, max(lease.size, len(lease.queue)))
                try:
                    grant = await asyncio.wait_for(
                        self._take(key_id, rate, burst, want), self._timeout
                    )
                except Exception as error:
                    self._unreachable(error)
                    _answer_all(lease.queue, error=_Unreachable())
                    return
                self._reached()
                left = grant.granted
                while left and lease.queue:
                    waiter = lease.queue.popleft()
                    if not waiter.done():  # not cancelled meanwhile
                        waiter.set_result(0.0)
                        left -= 1
                lease.tokens += left
                if grant.granted == 0:
                    lease.refused_until = self._clock() + grant.retry_after
                    _answer_all(lease.queue, wait=grant.retry_after)
        finally:
            lease.fetch = None

    def _unreachable(self, error: Exception) -> None:
        self.failures += 1
        if not self._failing:
            self._failing = True
            log.warning(
                "the shared rate-limit store (%s) is unreachable (%s): this process limits"
                " keys on its own for %.1f s at a time, until it answers again",
                self.store, type(error).__name__ if isinstance(error, TimeoutError)
                else error, self._retry_seconds,
            )  # fmt: skip
        self._down_until = self._clock() + self._retry_seconds

    def _reached(self) -> None:
        self.round_trips += 1
        if self._failing:
            self._failing = False
            self._local.clear()  # the next outage starts its buckets afresh
            log.warning("the shared rate-limit store (%s) answers again", self.store)


def _answer_all(
    queue: deque[asyncio.Future[float]], *, wait: float = 0.0, error: Exception | None = None
) -> None:
    while queue:
        waiter = queue.popleft()
        if waiter.done():
            continue
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(wait)
