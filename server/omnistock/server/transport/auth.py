"""Authentication, the caller's principal, rate limits and the audit trail of one call.

The interceptor layer resolves the ``authorization`` metadata to a Principal once per
call and keeps it in a context variable for the servicers, which check scopes and
exposure where the request names locations. Keys are cached for a few seconds, so a
revoked key stops working within ``KEY_CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from cachetools import TTLCache
from omnistock.server.domain.security import (
    Principal,
    RateLimited,
    Role,
    Unauthenticated,
    parse_key,
    secret_matches,
)
from omnistock.server.domain.stock import Exposure
from omnistock.server.store.keys import KeyRepository, StoredKey

KEY_CACHE_SECONDS = 5.0

log = logging.getLogger("omnistock.auth")

# Everything, for a server started with --insecure (and for in-process test servers).
INSECURE = Principal(
    key_id="-",
    name="insecure-demo",
    roles=frozenset(Role),
    exposure=Exposure.EXACT,
    rate_per_second=float("inf"),
)

CURRENT: ContextVar[Principal] = ContextVar("omnistock_principal", default=INSECURE)
AUDIT: ContextVar[dict[str, object] | None] = ContextVar("omnistock_audit", default=None)


def principal() -> Principal:
    """The principal of the call being served."""
    return CURRENT.get()


def audit_note(**detail: object) -> None:
    """Add to what the audit log records of this call (a write)."""
    note = AUDIT.get()
    if note is not None:
        note.update(detail)


class RateLimiter:
    """A token bucket per principal: ``rate_per_second`` tokens a second, up to ``burst``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: Principal) -> None:
        """Spend one token, or raise RateLimited with when the next one comes."""
        if who.rate_per_second == float("inf"):
            return
        now = self._clock()
        tokens, last = self._buckets.get(who.key_id, (float(who.burst), now))
        tokens = min(float(who.burst), tokens + (now - last) * who.rate_per_second)
        if tokens < 1.0:
            self._buckets[who.key_id] = (tokens, now)
            raise RateLimited(who.name, (1.0 - tokens) / who.rate_per_second)
        self._buckets[who.key_id] = (tokens - 1.0, now)


class Authenticator:
    def __init__(
        self,
        keys: KeyRepository | None,
        run_blocking: Callable[..., Awaitable[Any]],
        *,
        insecure: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._run = run_blocking
        self.insecure = insecure
        # The hot path: key text -> (principal, when to check the key again). A plain dict
        # lookup; cachetools' TTLCache costs several times as much per call.
        self._by_text: dict[str, tuple[Principal, float]] = {}
        self._stored: TTLCache[str, StoredKey | None] = TTLCache(
            maxsize=10_000, ttl=KEY_CACHE_SECONDS, timer=clock
        )
        self.limiter = RateLimiter()
        self._rechecks: dict[str, asyncio.Task[None]] = {}

    def known(self, metadata: Any) -> Principal | None:
        """The caller, when that needs no wait: insecure mode, or a key checked within
        KEY_CACHE_SECONDS, or within twice that and due: a due key is served while it is
        checked again off this call's path, and stops working then if revoked. None
        otherwise: ``await authenticate`` then."""
        if self.insecure:
            return INSECURE
        text = _key_text(metadata)
        if text is None:
            return None
        known = self._by_text.get(text)
        if known is None:
            return None
        due = self._clock() - known[1]
        if due < 0:
            return known[0]
        if due < KEY_CACHE_SECONDS:
            self._recheck_later(text)
            return known[0]
        return None

    async def authenticate(self, metadata: Any) -> Principal:
        who = self.known(metadata)
        if who is not None:
            return who
        text = _key_text(metadata)
        if text is None:
            raise Unauthenticated(
                "this call needs an API key in the 'authorization' metadata",
                reason="API_KEY_MISSING",
            )
        return await self._check(text)

    def _recheck_later(self, text: str) -> None:
        if text in self._rechecks:
            return

        async def recheck() -> None:
            try:
                await self._check(text)
            except Unauthenticated:
                self._by_text.pop(text, None)
            except Exception:
                log.exception("checking an API key again failed")

        task = asyncio.get_running_loop().create_task(recheck())
        self._rechecks[text] = task
        task.add_done_callback(lambda _: self._rechecks.pop(text, None))

    async def _check(self, text: str) -> Principal:
        """Look the key up (in the short-lived cache of stored keys, else the database)
        and remember its principal for KEY_CACHE_SECONDS."""
        parsed = parse_key(text)
        if parsed is None:
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        key_id, secret = parsed
        if key_id in self._stored:
            stored = self._stored[key_id]
        else:
            stored = await self._run(self._lookup, key_id)
            self._stored[key_id] = stored
        if (
            stored is None
            or stored.revoked_at is not None
            or not secret_matches(secret, stored.secret_hash)
        ):
            # One answer for unknown, revoked and wrong keys alike.
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        if len(self._by_text) >= 10_000:
            self._by_text.clear()  # many distinct keys: start over rather than grow
        self._by_text[text] = (stored.principal, self._clock() + KEY_CACHE_SECONDS)
        return stored.principal

    def _lookup(self, key_id: str) -> StoredKey | None:
        assert self._keys is not None
        return self._keys.get(key_id)


def _key_text(metadata: Any) -> str | None:
    """The 'authorization' metadata's value, if the call sent one."""
    for key, value in metadata or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None
