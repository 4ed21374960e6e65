"""API keys as the transport's authenticator asks about them.

The authenticator (transport/auth.py) caches what it hears here for its key cache time;
this service reads a key id's stored key from the repository the app wires in. Whether a
presented secret opens the key is the domain's rule (``StoredKey.admits``)."""

from __future__ import annotations

from typing import Protocol

from omnistock.server.domain.security import StoredKey


class StoredKeys(Protocol):
    def get(self, key_id: str) -> StoredKey | None: ...


class KeyService:
    def __init__(self, keys: StoredKeys) -> None:
        self._keys = keys

    def lookup(self, key_id: str) -> StoredKey | None:
        """The key ``key_id`` names, revoked or not; None when it names none. A blocking
        read: run it on the bounded pool."""
        return self._keys.get(key_id)
