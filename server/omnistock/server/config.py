"""Server configuration: flags, else OMNISTOCK_* environment variables, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from omnistock.server.service.stock_cache import DEFAULT_MAXSIZE, DEFAULT_TTL_SECONDS
from omnistock.server.store.database import DEFAULT_DATABASE_URL

DEFAULT_LISTEN = "127.0.0.1:50051"


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything `omnistock serve` can be told.

    >>> ServerConfig(listen="127.0.0.1:0", database_url="sqlite:///:memory:").demo
    False
    """

    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    demo: bool = False
    db_threads: int = 8
    grace_seconds: float = 10.0
    read_cache_size: int = DEFAULT_MAXSIZE
    read_cache_ttl: float = DEFAULT_TTL_SECONDS
    log_level: str = "INFO"

    @classmethod
    def from_env(cls) -> ServerConfig:
        return cls(
            listen=os.environ.get("OMNISTOCK_LISTEN", DEFAULT_LISTEN),
            database_url=os.environ.get("OMNISTOCK_DATABASE_URL", DEFAULT_DATABASE_URL),
            demo=env_flag("OMNISTOCK_DEMO"),
            db_threads=int(os.environ.get("OMNISTOCK_DB_THREADS", "8")),
            grace_seconds=float(os.environ.get("OMNISTOCK_GRACE_SECONDS", "10")),
            log_level=os.environ.get("OMNISTOCK_LOG_LEVEL", "INFO"),
            read_cache_size=int(os.environ.get("OMNISTOCK_READ_CACHE_SIZE", DEFAULT_MAXSIZE)),
            read_cache_ttl=float(os.environ.get("OMNISTOCK_READ_CACHE_TTL", DEFAULT_TTL_SECONDS)),
        )
