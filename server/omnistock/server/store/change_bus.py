"""The change bus's database halves: how change payloads travel between the processes
on one database. service/changes.py owns what a change is, its payloads, the in-process
fan-out and the batching and retry policy; a channel here only carries text.

- PostgreSQL: LISTEN/NOTIFY (store/change_bus_postgres.py).
- SQLite: a ``change_log`` table that every process polls (store/change_bus_sqlite.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from omnistock.server.store.change_bus_postgres import PostgresNotify
from omnistock.server.store.change_bus_sqlite import SqliteChangeLog
from sqlalchemy import Engine

# NOTIFY payloads must stay under 8,000 bytes.
MAX_PAYLOAD_BYTES = 7_000


class ChangeChannel(Protocol):
    """Carries payloads (text of at most MAX_PAYLOAD_BYTES) to every other process on
    the database. ``origin`` names this process's end; a channel may hand a process its
    own payloads too, so receivers drop those by the origin written inside them."""

    origin: str

    def start(self, receive: Callable[[str], None], missed: Callable[[], None]) -> None:
        """Hand each payload that arrives to ``receive``, and call ``missed`` whenever
        payloads may have been lost, on a thread of the channel's own."""
        ...

    def send(self, payloads: Sequence[str]) -> None:
        """Send now, waiting for the database; raises if that fails (nothing was sent)."""
        ...

    def position(self) -> int | None:
        """The primary's WAL position now, in bytes (PostgreSQL; None on SQLite): every
        write committed before the call is at or before it. Raises if it cannot be read."""
        ...

    def close(self) -> None: ...


def change_channel(engine: Engine, *, poll_seconds: float = 0.02) -> ChangeChannel:
    """The channel for the engine's database: LISTEN/NOTIFY on PostgreSQL, the polled
    change log on SQLite."""
    origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if engine.dialect.name == "postgresql":
        url = engine.url.set(drivername="postgresql")
        return PostgresNotify(url.render_as_string(hide_password=False), origin=origin)
    return SqliteChangeLog(engine, poll_seconds=poll_seconds, origin=origin)
