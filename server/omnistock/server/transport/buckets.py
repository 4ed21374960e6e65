"""Token buckets by name: the rate limits of keys and of failed authentication."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping


class TokenBuckets:
    """A token bucket per name: ``rate`` tokens a second, up to ``burst``.

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

    def take(self, name: str, rate: float, burst: float) -> float:
        """Spend one token and answer 0.0; or, with none left, spend nothing and answer the
        seconds until the next one comes (always above 0)."""
        now = self._clock()
        tokens, last = self._buckets.get(name, (burst, now))
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
