"""The key cache: a used key is checked again in the background once its few seconds
are up, so calls do not wait on the database, and a revoked key still stops working."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from omnistock.server.domain.security import Principal, Role, Unauthenticated, hash_secret, new_key
from omnistock.server.store.keys import StoredKey
from omnistock.server.transport.auth import KEY_CACHE_SECONDS, Authenticator

NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Keys:
    """A key store that counts its lookups and can revoke."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.stored = StoredKey(
            Principal(key_id, "kiosk", frozenset({Role.READ})), hash_secret(secret), NOW, None
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


def test_a_due_key_is_rechecked_off_the_call_and_a_revoked_one_then_refused() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    authenticator = Authenticator(keys, run_blocking, insecure=False, clock=clock)  # type: ignore[arg-type]
    metadata = (("authorization", f"Bearer {text}"),)

    async def scenario() -> None:
        assert (await authenticator.authenticate(metadata)).name == "kiosk"
        assert keys.lookups == 1
        clock.now += 1
        await authenticator.authenticate(metadata)
        assert keys.lookups == 1  # cached
        keys.revoke()
        clock.now += KEY_CACHE_SECONDS  # due: answered from the cache, checked again meanwhile
        assert (await authenticator.authenticate(metadata)).name == "kiosk"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert keys.lookups == 2
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(metadata)

    asyncio.run(scenario())


def test_a_key_long_unused_is_checked_before_the_call() -> None:
    clock = Clock()
    key_id, secret, text = new_key()
    keys = Keys(key_id, secret)
    authenticator = Authenticator(keys, run_blocking, insecure=False, clock=clock)  # type: ignore[arg-type]
    metadata = (("authorization", text),)

    async def scenario() -> None:
        await authenticator.authenticate(metadata)
        keys.revoke()
        clock.now += 2 * KEY_CACHE_SECONDS  # past the grace: no answer from the cache
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(metadata)

    asyncio.run(scenario())
