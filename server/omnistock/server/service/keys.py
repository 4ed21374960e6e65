"""API keys as the transport's authenticator asks about them.

The authenticator (transport/auth.py) caches what it hears here for its key cache time,
and forgets what it heard of keys bound to channels whenever groups or channels change
(``Changes(channels=True)``). This service reads a key id's stored key from the
repository the app wires in. Whether a presented secret opens the key is the domain's
rule (``StoredKey.admits``).

A key bound to channels sees nothing of locations outside them: its principal's
``locations`` are the key's own scope (every location when it has none) intersected
with the locations of its channels' groups, member groups included, resolved at each
lookup. A channel that does not exist adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Protocol

from omnistock.server.domain.security import StoredKey


class StoredKeys(Protocol):
    def get(self, key_id: str) -> StoredKey | None: ...


class ChannelLocations(Protocol):
    def resolved_locations(self, channel_ids: Collection[str]) -> frozenset[str]: ...


class KeyService:
    def __init__(self, keys: StoredKeys, channels: ChannelLocations | None = None) -> None:
        self._keys = keys
        self._channels = channels

    def lookup(self, key_id: str) -> StoredKey | None:
        """The key ``key_id`` names, revoked or not, its channels resolved to locations;
        None when it names none. A blocking read: run it on the bounded pool."""
        stored = self._keys.get(key_id)
        if stored is None or stored.principal.channels is None:
            return stored
        who = stored.principal
        assert who.channels is not None
        reach = (
            frozenset()
            if self._channels is None
            else self._channels.resolved_locations(who.channels)
        )
        locations = reach if who.locations is None else who.locations & reach
        return replace(stored, principal=replace(who, locations=locations))
