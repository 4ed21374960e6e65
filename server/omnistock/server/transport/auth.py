"""Authentication, the caller's principal, rate limits and the audit trail of one call.

The interceptor layer resolves the ``authorization`` metadata to a Principal once per
call and keeps it in a context variable for the servicers, which check scopes and
exposure where the request names locations.

A key's database row is cached for ``KEY_CACHE_SECONDS``, counted from the lookup, and
never used past that: a revoked key stops working within that bound, for every call and
every open stream (``OpenKey`` checks a stream's key again on each message and whenever
its cached check runs out, idle or not). A key in use is looked up again in the
background in the last fifth of its time, so busy callers never wait for the database.

A key bound to channels is resolved to the locations of its channels' groups at lookup.
``forget_channel_keys`` (called on every ``Changes(channels=True)``, from any thread)
makes every cached check and lookup of such keys look up again on the next call, so a
membership change shows in what they may see at once.

Failed authentication is limited per peer address, and unknown key ids are remembered
like known ones, so a flood of made-up keys costs a bounded number of lookups.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from omnistock.server.domain.rate_limits import TokenBuckets
from omnistock.server.domain.security import (
    Principal,
    RateLimited,
    Role,
    StoredKey,
    Unauthenticated,
    normalise_key,
    parse_key,
)
from omnistock.server.domain.stock import Exposure
from omnistock.server.service.keys import KeyService
from omnistock.server.service.rate_limits import SharedRateLimits

KEY_CACHE_SECONDS = 5.0
# A key in use is looked up again once this share of its cache time is left.
_REFRESH_SHARE = 0.2
# Failed authentication per peer address: a bucket of this many, refilled at this rate.
AUTH_FAILURE_BURST = 30
AUTH_FAILURES_PER_SECOND = 1.0

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
    """A token bucket per principal: ``rate_per_second`` tokens a second, up to ``burst``;
    this process's own, or with ``shared`` one every process shares (leased in small
    parts: service.rate_limits)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        shared: SharedRateLimits | None = None,
    ) -> None:
        self._buckets = TokenBuckets(clock=clock)
        self.shared = shared

    async def take(self, who: Principal) -> None:
        """Spend one token, or raise RateLimited with when the next one comes."""
        wait = await self.wait(who)
        if wait > 0:
            raise RateLimited(who.name, wait)

    async def wait(self, who: Principal) -> float:
        """Spend one token and answer 0.0, or answer the seconds until the next one."""
        if who.rate_per_second == float("inf"):
            return 0.0
        if self.shared is None:
            return self._buckets.take(who.key_id, who.rate_per_second, who.burst)
        quick = self.shared.take_now(who.key_id, who.rate_per_second, who.burst)
        if quick is not None:
            return quick
        return await self.shared.take(who.key_id, who.rate_per_second, who.burst)


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A key id's row (None: no such key), when it was read (the authenticator's clock),
    and the channel generation it was read in."""

    key: StoredKey | None
    at: float
    generation: int = 0

    def current(self, generation: int) -> bool:
        """False for a key bound to channels read before the channels last changed."""
        return (
            self.key is None or self.key.principal.channels is None or self.generation == generation
        )


@dataclass(frozen=True, slots=True)
class _Checked:
    """A key that passed, until when that answer may be used, and its lookup's channel
    generation."""

    principal: Principal
    good_until: float
    generation: int = 0


class Authenticator:
    def __init__(
        self,
        keys: KeyService | None,
        run_blocking: Callable[..., Awaitable[Any]],
        *,
        insecure: bool,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = KEY_CACHE_SECONDS,
        failure_burst: int = AUTH_FAILURE_BURST,
        failures_per_second: float = AUTH_FAILURES_PER_SECOND,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._run = run_blocking
        self.insecure = insecure
        self.cache_seconds = cache_seconds
        self._refresh_ahead = cache_seconds * _REFRESH_SHARE
        # The hot path: normalised key text -> principal, until when. A plain dict
        # lookup; cachetools' TTLCache costs several times as much per call.
        self._by_text: dict[str, _Checked] = {}
        # Key id -> its row, or None for an id that names no key (so made-up ids are
        # remembered too); bounded.
        self._lookups: TTLCache[str, _Lookup] = TTLCache(
            maxsize=10_000, ttl=cache_seconds, timer=clock
        )
        self.limiter = RateLimiter(clock) if limiter is None else limiter
        self._failure_burst = float(failure_burst)
        self._failure_rate = failures_per_second
        # A peer's bucket is full again after burst / rate seconds: forget it then.
        self._failures = TokenBuckets(
            TTLCache(maxsize=100_000, ttl=failure_burst / failures_per_second, timer=clock),
            clock=clock,
        )
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._fetching: dict[str, asyncio.Future[_Lookup]] = {}
        # Moves on whenever groups or channels change: a key bound to channels checked
        # in an earlier generation is looked up again.
        self._generation = 0

    def forget_channel_keys(self) -> None:
        """Groups or channels changed: look keys bound to channels up again. Safe from
        any thread (one assignment)."""
        self._generation += 1

    def known(self, metadata: Any) -> Principal | None:
        """The caller, when that needs no wait: insecure mode, or a key whose check is
        younger than ``cache_seconds`` (near the end of that time it is checked again
        off this call's path). None otherwise: ``await authenticate`` then."""
        if self.insecure:
            return INSECURE
        text = _key_text(metadata)
        if text is None:
            return None
        checked = self._by_text.get(text)
        if checked is None:
            return None
        if checked.generation != self._generation and checked.principal.channels is not None:
            return None
        left = checked.good_until - self._clock()
        if left <= 0:
            return None
        if left < self._refresh_ahead:
            self._recheck_later(text)
        return checked.principal

    async def authenticate(self, metadata: Any, peer: str = "") -> Principal:
        """The caller's principal, or Unauthenticated; RateLimited (reason
        AUTH_RATE_LIMITED) once ``peer`` has failed too often lately."""
        who = self.known(metadata)
        if who is not None:
            return who
        # Paid before the lookup and given back on success, so that concurrent calls
        # from one peer cannot all slip past an emptied bucket.
        address = peer_address(peer)
        wait = self._failures.take(address, self._failure_rate, self._failure_burst)
        if wait > 0:
            raise RateLimited(
                "this address, after failed authentication,", wait, reason="AUTH_RATE_LIMITED"
            )
        text = _key_text(metadata)
        if text is None:
            raise Unauthenticated(
                "this call needs an API key in the 'authorization' metadata",
                reason="API_KEY_MISSING",
            )
        try:
            who = await self._check(text)
        except Unauthenticated:
            raise
        except BaseException:  # not the caller's failure (the database's, say)
            self._failures.give_back(address, self._failure_burst)
            raise
        self._failures.give_back(address, self._failure_burst)
        return who

    async def recheck(self, metadata: Any) -> Principal:
        """The key of a call under way, again: from the cache while its check is young,
        else looked up; Unauthenticated once it is revoked."""
        who = self.known(metadata)
        if who is not None:
            return who
        text = _key_text(metadata)
        if text is None:
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        return await self._check(text)

    def seconds_left(self, metadata: Any) -> float:
        """How long the cached check of this call's key may still be used (0: none)."""
        text = _key_text(metadata)
        checked = None if text is None else self._by_text.get(text)
        return 0.0 if checked is None else max(0.0, checked.good_until - self._clock())

    def _recheck_later(self, text: str) -> None:
        if text in self._rechecks:
            return

        async def recheck() -> None:
            try:
                await self._check(text, refresh=True)
            except Unauthenticated:
                self._by_text.pop(text, None)
            except Exception:
                log.exception("checking an API key again failed")

        task = asyncio.get_running_loop().create_task(recheck())
        self._rechecks[text] = task
        task.add_done_callback(lambda _: self._rechecks.pop(text, None))

    async def _check(self, text: str, *, refresh: bool = False) -> Principal:
        """Look the key up (a lookup younger than ``cache_seconds``, else the database;
        with ``refresh``, the database once the lookup is near its end) and remember its
        principal until the lookup's time runs out."""
        parsed = parse_key(text)
        if parsed is None:
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        key_id, secret = parsed
        lookup = self._lookups.get(key_id)
        ahead = self._refresh_ahead if refresh else 0.0
        if (
            lookup is None
            or lookup.at + self.cache_seconds - ahead <= self._clock()
            or not lookup.current(self._generation)
        ):
            # Shielded: a caller that goes away does not end a lookup others wait for.
            lookup = await asyncio.shield(self._fetch(key_id))
        stored = lookup.key
        if stored is None or not stored.admits(secret):
            # One answer for unknown, revoked, unusable and wrong keys alike.
            self._by_text.pop(text, None)
            raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        if len(self._by_text) >= 10_000:
            self._by_text.clear()  # many distinct keys: start over rather than grow
        self._by_text[text] = _Checked(
            stored.principal, lookup.at + self.cache_seconds, lookup.generation
        )
        return stored.principal

    def _fetch(self, key_id: str) -> asyncio.Future[_Lookup]:
        """The key id's lookup: one at a time per id, shared by every call and stream that
        needs it meanwhile (a thousand kiosks on one key make one lookup, not a thousand)."""
        task = self._fetching.get(key_id)
        if task is None:
            task = asyncio.ensure_future(self._read(key_id))
            self._fetching[key_id] = task

            def done(finished: asyncio.Future[_Lookup]) -> None:
                self._fetching.pop(key_id, None)
                if not finished.cancelled():
                    finished.exception()  # retrieved, should every waiter have gone

            task.add_done_callback(done)
        return task

    async def _read(self, key_id: str) -> _Lookup:
        at = self._clock()  # before the read: the answer is at least this fresh
        generation = self._generation  # likewise: a change during the read makes it old
        lookup = _Lookup(await self._run(self._lookup, key_id), at, generation)
        self._lookups[key_id] = lookup
        if lookup.key is not None and not lookup.key.principal.limits_valid:
            who = lookup.key.principal
            log.warning(
                "key %s (%s) is refused: its rate limit (%r a second, burst %r) is not one "
                "a token bucket can keep; create a new key",
                key_id, who.name, who.rate_per_second, who.burst,
            )  # fmt: skip
        return lookup

    def _lookup(self, key_id: str) -> StoredKey | None:
        assert self._keys is not None
        return self._keys.lookup(key_id)


class OpenKey:
    """The key of one open stream, checked again as the stream goes on.

    ``message()`` pays for each request message after the first (one token of the key's
    rate limit: a stream over the limit is slowed to it, not ended) and checks the key;
    ``check()`` checks it alone; ``seconds_left()`` says when the cached check runs
    out, which is when an idle stream must check again.
    """

    def __init__(self, auth: Authenticator, metadata: Any, who: Principal) -> None:
        self._auth = auth
        self._metadata = metadata
        self._who = who
        self._first = True

    async def check(self) -> None:
        await self._auth.recheck(self._metadata)

    def seconds_left(self) -> float:
        return self._auth.seconds_left(self._metadata)

    async def message(self) -> None:
        if self._first:
            self._first = False  # paid for with the call
        else:
            while (wait := await self._auth.limiter.wait(self._who)) > 0:
                await asyncio.sleep(wait)
        await self.check()


def peer_address(peer: str) -> str:
    """Whom failed authentication is counted against: the peer's IP address (an IPv6
    peer's /64, which one host commonly holds whole); other transports as named.

    >>> peer_address("ipv4:192.0.2.7:50312"), peer_address("ipv6:[2001:db8::5]:443")
    ('192.0.2.7', '2001:db8::/64')
    """
    kind, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0]
    if kind == "ipv4":
        return host
    if kind == "ipv6":
        host = host.strip("[]")
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return peer


def _key_text(metadata: Any) -> str | None:
    """The 'authorization' metadata's value, normalised, if the call sent one."""
    for key, value in metadata or ():
        if key == "authorization":
            return normalise_key(
                value if isinstance(value, str) else value.decode(errors="replace")
            )
    return None
