"""The key cache: a key's lookup is trusted for KEY_CACHE_SECONDS and never longer, so a
revoked key stops within that bound however it is spelled; a key in use is looked up
again in the background before then, so busy callers do not wait on the database; and
made-up keys cost a bounded number of lookups per peer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnistock.server.domain.rate_limits import TokenBuckets
from omnistock.server.domain.security import (
    MAX_RETRY_AFTER_SECONDS,
    MIN_RETRY_AFTER_SECONDS,
    Principal,
    RateLimited,
    Role,
    StoredKey,
    Unauthenticated,
    hash_secret,
    new_key,
)
from omnistock.server.service.keys import KeyService
from omnistock.server.transport.auth import KEY_CACHE_SECONDS, Authenticator, RateLimiter

NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Keys:
    """A key store of one key that counts its lookups and can revoke."""

    def __init__(self, key_id: str, secret: str, *, rate: float = 100.0, burst: int = 200) -> None:
        self.stored = StoredKey(
            Principal(key_id, "kiosk", frozenset({Role.READ}), rate_per_second=rate, burst=burst),
            hash_secret(secret),
            NOW,
            None,
        )
        self.lookups = 0

    def get(self, key_id: str) -> StoredKey | None:
        self.lookups += 1
        return self.stored if key_id == self.stored.principal.key_id else None

    def revoke(self) -> None:
        s = self.stored
        self.stored = StoredKey(s.principal, s.secret_hash, s.created_at, NOW)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run_blocking(fn: Any, *args: Any) -> Any:
    return fn(*args)


def authenticator(keys: Keys, clock: Clock, **options: Any) -> Authenticator:
    return Authenticator(KeyService(keys), run_blocking, insecure=False, clock=clock, **options)


async def settle() -> None:
    """Let background lookups run."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_busy_key_is_looked_up_again_before_its_time_runs_out() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    auth = authenticator(keys, clock)
    metadata = (("authorization", f"Bearer {text}"),)

    async def scenario() -> None:
        assert (await auth.authenticate(metadata)).name == "kiosk"
        clock.now += 1
        await auth.authenticate(metadata)
        assert keys.lookups == 1  # cached
        clock.now += KEY_CACHE_SECONDS * 0.85 - 1  # near the end: served, looked up meanwhile
        assert auth.known(metadata) is not None
        await settle()
        assert keys.lookups == 2
        clock.now += KEY_CACHE_SECONDS * 0.5  # past the first lookup's time: the second's holds
        assert auth.known(metadata) is not None
        assert keys.lookups == 2

    asyncio.run(scenario())


def test_a_revoked_key_is_never_served_from_a_lookup_older_than_the_cache_time() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    auth = authenticator(keys, clock)
    metadata = (("authorization", text),)

    async def scenario() -> None:
        await auth.authenticate(metadata)
        keys.revoke()
        clock.now += KEY_CACHE_SECONDS  # unused since: its lookup is spent, so it is looked up
        assert auth.known(metadata) is None
        with pytest.raises(Unauthenticated):
            await auth.authenticate(metadata)

    asyncio.run(scenario())


@pytest.mark.parametrize("spelling", ["{} ", " {}", "Bearer {} ", "bearer\t{}"])
def test_a_revoked_key_stops_within_the_cache_time_however_it_is_spelled(spelling: str) -> None:
    """The same key sent with a trailing space (or another spelling) is one cache entry:
    first used late in the plain key's cache time, it does not start a time of its own."""
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    auth = authenticator(keys, clock)
    plain = (("authorization", text),)
    other = (("authorization", spelling.format(text)),)
    revoked_at = clock.now + 0.5

    async def scenario() -> None:
        await auth.authenticate(plain)
        clock.now = revoked_at
        keys.revoke()
        clock.now = revoked_at + KEY_CACHE_SECONDS * 0.7  # other spelling's first call
        assert (await auth.authenticate(other)).name == "kiosk"
        clock.now = revoked_at + KEY_CACHE_SECONDS  # the bound: both refused
        for metadata in (other, plain):
            with pytest.raises(Unauthenticated):
                await auth.authenticate(metadata)

    asyncio.run(scenario())


def test_made_up_keys_cost_a_bounded_number_of_lookups_per_peer() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    auth = authenticator(keys, clock, failure_burst=10, failures_per_second=1.0)
    attacker, neighbour = "ipv4:203.0.113.9:40001", "ipv4:198.51.100.4:40002"

    async def scenario() -> None:
        # A key the attacker's address used before (a shared NAT, a balancer) keeps working.
        regular = (("authorization", text),)
        assert (await auth.authenticate(regular, attacker)).name == "kiosk"
        lookups_before = keys.lookups
        refused = 0
        for _ in range(200):
            made_up = (("authorization", new_key()[2]),)
            with pytest.raises((Unauthenticated, RateLimited)) as caught:
                await auth.authenticate(made_up, attacker)
            if isinstance(caught.value, RateLimited):
                refused += 1
                assert caught.value.reason == "AUTH_RATE_LIMITED"
                assert 0 < caught.value.retry_after <= 1.0
        assert keys.lookups - lookups_before == 10 and refused == 190
        assert (await auth.authenticate(regular, attacker)).name == "kiosk"
        # The same address from another port is the same peer; a key it has not used
        # lately waits with it.
        other = new_key()[2]
        with pytest.raises(RateLimited):
            await auth.authenticate((("authorization", other),), "ipv4:203.0.113.9:40009")
        # Another peer is served, and a key id seen lately is not looked up again.
        assert (await auth.authenticate(regular, neighbour)).name == "kiosk"
        lookups = keys.lookups
        for _ in range(5):
            with pytest.raises(Unauthenticated):
                await auth.authenticate((("authorization", f"osk_{key_id}_wrong"),), neighbour)
        unknown = (("authorization", "osk_000000000000_nope"),)
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                await auth.authenticate(unknown, neighbour)
        assert keys.lookups == lookups + 1  # the unknown id, once
        # The attacker's bucket refills with time.
        clock.now += 2
        with pytest.raises(Unauthenticated):
            await auth.authenticate(unknown, attacker)

    asyncio.run(scenario())


def test_calls_and_streams_waiting_for_one_key_share_its_lookup() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)

    async def slow_blocking(fn: Any, *args: Any) -> Any:
        await asyncio.sleep(0.01)  # a database round trip
        return fn(*args)

    auth = Authenticator(KeyService(keys), slow_blocking, insecure=False, clock=clock)

    async def scenario() -> None:
        metadata = (("authorization", text),)
        many = [auth.authenticate(metadata, f"ipv4:10.0.0.{n}:1") for n in range(100)]
        assert {who.name for who in await asyncio.gather(*many)} == {"kiosk"}
        assert keys.lookups == 1
        clock.now += KEY_CACHE_SECONDS  # the lookup is spent: every open stream checks again
        await asyncio.gather(*(auth.recheck(metadata) for _ in range(100)))
        assert keys.lookups == 2

    asyncio.run(scenario())


def test_successful_authentication_costs_a_peer_nothing() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    auth = authenticator(keys, clock, failure_burst=2, failures_per_second=0.01)
    peer = "ipv6:[2001:db8::5]:443"

    async def scenario() -> None:
        for _ in range(20):
            auth._by_text.clear()  # each call a lookup, as for many distinct keys
            clock.now += KEY_CACHE_SECONDS
            assert (await auth.authenticate((("authorization", text),), peer)).name == "kiosk"

    asyncio.run(scenario())


def test_a_stored_key_with_limits_no_bucket_can_keep_is_refused_not_a_crash() -> None:
    clock = Clock()
    for rate, burst in [(0.0, 1), (-5.0, 1), (float("nan"), 10), (10.0, 0), (10.0, -3)]:
        key_id, secret, text = new_key()
        auth = authenticator(Keys(key_id, secret, rate=rate, burst=burst), clock)
        with pytest.raises(Unauthenticated):
            asyncio.run(auth.authenticate((("authorization", text),)))


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.001, max_value=1e9),
    burst=st.integers(min_value=1, max_value=1_000_000_000),
    steps=st.lists(st.floats(min_value=0, max_value=10), max_size=20),
)
def test_a_rate_limit_never_asks_for_a_negative_or_endless_wait(
    rate: float, burst: int, steps: list[float]
) -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    who = Principal("k", "app", frozenset({Role.READ}), rate_per_second=rate, burst=burst)

    async def calls() -> None:
        for step in steps:
            clock.now += step
            for _ in range(3):
                try:
                    await limiter.take(who)
                except RateLimited as limited:
                    assert limited.retry_after >= MIN_RETRY_AFTER_SECONDS
                    assert limited.retry_after <= MAX_RETRY_AFTER_SECONDS

    asyncio.run(calls())


def test_retry_delays_always_say_to_wait() -> None:
    assert RateLimited("app", -2.5).retry_after == MIN_RETRY_AFTER_SECONDS
    assert RateLimited("app", float("nan")).retry_after == MIN_RETRY_AFTER_SECONDS
    # A bucket a hair short of its next token: the wait still survives the wire.
    assert RateLimited("app", 4e-7).retry_after == MIN_RETRY_AFTER_SECONDS
    assert RateLimited("app", 1e300).retry_after == MAX_RETRY_AFTER_SECONDS
    buckets = TokenBuckets(clock=Clock())
    assert buckets.take("a", 2.0, 1) == 0.0
    assert buckets.take("a", 2.0, 1) == pytest.approx(0.5)
