"""Token buckets, and how a key's bucket is shared by every process that serves it.

A key's limit is a token bucket: ``rate_per_second`` tokens a second, up to ``burst``.
Shared (docs/security.md "Rate limits across processes"), the bucket lives in one place
(the database or Redis), and each process takes tokens from it in small leases of
``lease_size`` tokens, spends them locally, and goes back when they are spent. A token
leased is gone from the shared bucket whether or not it is spent, so from a full bucket the
calls accepted across every process in ``t`` seconds are at most ``rate * t + burst``; over
any window, at most that plus what the processes had leased before it (one lease each).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

# A lease is at most this share of the burst and this many seconds of the rate (at least 1).
LEASE_BURST_SHARE = 0.1
LEASE_SECONDS = 0.05


def lease_size(rate_per_second: float, burst: float) -> int:
    """How many tokens a process takes from a key's shared bucket at a time.

    >>> lease_size(100.0, 200), lease_size(10_000.0, 200), lease_size(1.0, 2)
    (5, 20, 1)
    """
    share = min(burst * LEASE_BURST_SHARE, rate_per_second * LEASE_SECONDS)
    return max(1, math.floor(share)) if math.isfinite(share) else 1


@dataclass(frozen=True, slots=True)
class Grant:
    """What a shared bucket gave: ``granted`` tokens (up to what was asked); with none,
    ``retry_after`` seconds until the next one comes (above 0)."""

    granted: int
    retry_after: float = 0.0


def refill_and_take(
    tokens: float, elapsed: float, rate: float, burst: float, want: int
) -> tuple[Grant, float]:
    """The bucket's arithmetic, the same in every store: refill for ``elapsed`` seconds
    (never below 0, never above ``burst``), take up to ``want`` whole tokens; the grant
    and the tokens left.

    >>> refill_and_take(0.5, 0.25, 2.0, 10, 3)
    (Grant(granted=1, retry_after=0.0), 0.0)
    >>> refill_and_take(0.0, 0.0, 4.0, 10, 3)
    (Grant(granted=0, retry_after=0.25), 0.0)
    """
    tokens = min(float(burst), tokens + max(0.0, elapsed) * rate)
    granted = min(want, math.floor(tokens))
    left = tokens - granted
    if granted > 0:
        return Grant(granted), left
    return Grant(0, (1.0 - left) / rate), left


class TokenBuckets:
    """A token bucket per name, kept in this process: ``rate`` tokens a second, up to
    ``burst``.

    ``buckets`` holds (tokens, when last counted) by name; give a bounded mapping
    (cachetools) where names come from the network.
    """

    def __init__(
        self,
        buckets: MutableMapping[str, tuple[float, float]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets: MutableMapping[str, tuple[float, float]] = {} if buckets is None else buckets
        self._clock = clock

    def take(self, name: str, rate: float, burst: float, *, start: float | None = None) -> float:
        """Spend one token and answer 0.0; or, with none left, spend nothing and answer the
        seconds until the next one comes (always above 0). A new bucket holds ``start``
        tokens (default: full)."""
        now = self._clock()
        tokens, last = self._buckets.get(name, (burst if start is None else start, now))
        tokens = min(burst, tokens + max(0.0, now - last) * rate)
        if tokens < 1.0:
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[name] = (tokens - 1.0, now)
        return 0.0

    def give_back(self, name: str, burst: float) -> None:
        """Return a token taken in advance for work that turned out free."""
        if name in self._buckets:
            tokens, last = self._buckets[name]
            self._buckets[name] = (min(burst, tokens + 1.0), last)

    def clear(self) -> None:
        self._buckets.clear()
