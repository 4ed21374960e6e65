"""A server that checks keys, with the key store beside it, for the security tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnistock.client import Client, Exposure
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure as DomainExposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

NOW = datetime.now(UTC)


@dataclass
class Keyring:
    server: InProcessServer
    keys: KeyRepository

    def key(
        self,
        name: str,
        *roles: Role,
        exposure: Exposure = Exposure.BANDED,
        rate: float = 1000.0,
        burst: int = 1000,
    ) -> str:
        _, text = self.keys.create(
            name, roles, locations=None, exposure=DomainExposure(int(exposure)),
            rate_per_second=rate, burst=burst, now=NOW,
        )  # fmt: skip
        return text

    def revoke(self, key: str) -> None:
        assert self.keys.revoke(key.strip().split("_")[1], now=NOW)

    def client(self, key: str | None, **options: Any) -> Client:
        return Client(self.server.target, api_key=key, **options)


@contextmanager
def keyring(database_url: str, **config: Any) -> Iterator[Keyring]:
    """A server on ``database_url`` that checks keys, configured with ``config``."""
    settings = ServerConfig(listen="127.0.0.1:0", database_url=database_url, **config)
    with InProcessServer(settings) as server:
        assert server.server is not None
        yield Keyring(server, KeyRepository(server.server.engine))
