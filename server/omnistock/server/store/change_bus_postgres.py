"""Change payloads over PostgreSQL LISTEN/NOTIFY (see store/change_bus.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from omnistock.server.store.replicas import PRIMARY_POSITION

log = logging.getLogger("omnistock.changes")

CHANNEL = "omnistock_changes"


class PostgresNotify:
    """Payloads over LISTEN/NOTIFY, on the channel ``omnistock_changes``. A listener
    thread holds one connection; sends go through another, made again after a failure."""

    def __init__(self, conninfo: str, *, origin: str) -> None:
        self._conninfo = conninfo
        self.origin = origin
        self._sender: psycopg.Connection[Any] | None = None
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._position_lock = threading.Lock()  # the sender connection, one user at a time

    def start(self, receive: Callable[[str], None], missed: Callable[[], None]) -> None:
        """Listen, waiting (up to 10 s) until the first LISTEN is in place."""
        ready = threading.Event()
        self._listener = threading.Thread(
            target=self._listen,
            args=(receive, missed, ready),
            name="omnistock-bus-listen",
            daemon=True,
        )
        self._listener.start()
        ready.wait(timeout=10)

    def _sending(self) -> psycopg.Connection[Any]:
        if self._sender is None or self._sender.closed:
            self._sender = psycopg.connect(self._conninfo, autocommit=True)
        return self._sender

    def position(self) -> int | None:
        # Asked on the sender's thread, just before a send (and once after each LISTEN).
        with self._position_lock:
            sender = self._sending()
            try:
                row = sender.execute(PRIMARY_POSITION).fetchone()
            except Exception:
                sender.close()
                raise
        assert row is not None
        return int(row[0])

    def send(self, payloads: Sequence[str]) -> None:
        with self._position_lock:
            self._send(payloads)

    def _send(self, payloads: Sequence[str]) -> None:
        self._sending()
        assert self._sender is not None
        try:
            with self._sender.cursor() as cursor:
                for payload in payloads:
                    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except Exception:
            self._sender.close()  # the next try connects afresh
            raise

    def _listen(
        self, receive: Callable[[str], None], missed: Callable[[], None], ready: threading.Event
    ) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=f"omnistock-listen-{os.getpid()}",
                    # A connection that died without a word is noticed within about 25 s.
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    # Notices sent before this LISTEN (while a connection was down, or while
                    # the first one was being made) never arrive: start afresh.
                    missed()
                    ready.set()
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            receive(notice.payload)
            except Exception:
                ready.set()
                if not self._stopping.is_set():
                    log.exception("listening for changes failed; reconnecting")
                    time.sleep(1)

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        if self._sender is not None:
            self._sender.close()
