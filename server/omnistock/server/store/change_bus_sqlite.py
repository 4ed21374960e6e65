"""Change payloads through SQLite's ``change_log`` table, which every process polls (see
store/change_bus.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger("omnistock.changes")


class SqliteChangeLog:
    """Payloads as rows of ``change_log``, tagged with their origin; a poller thread reads
    the rows after the last it saw and hands on other processes' payloads. Rows are kept
    for KEEP_SECONDS."""

    KEEP_SECONDS = 60.0

    def __init__(self, engine: Engine, *, poll_seconds: float = 0.02, origin: str) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self.origin = origin
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self._pruned = 0.0

    def _connect(self) -> Any:
        return self._engine.raw_connection()

    def start(self, receive: Callable[[str], None], missed: Callable[[], None]) -> None:
        """Poll for rows written from now on."""
        pooled = self._connect()
        try:
            row = pooled.driver_connection.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM change_log"
            ).fetchone()
        finally:
            pooled.close()
        self._poller = threading.Thread(
            target=self._run,
            args=(receive, missed, row[0]),
            name="omnistock-bus-poll",
            daemon=True,
        )
        self._poller.start()

    def position(self) -> int | None:
        return None  # no WAL positions, no replicas

    def send(self, payloads: Sequence[str]) -> None:
        now = time.time()
        pooled = self._connect()
        try:
            connection: Any = pooled.driver_connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "INSERT INTO change_log (origin, payload, created_at) VALUES (?, ?, ?)",
                    [(self.origin, p, now) for p in payloads],
                )
                if now - self._pruned > 10:
                    connection.execute(
                        "DELETE FROM change_log WHERE created_at < ?", (now - self.KEEP_SECONDS,)
                    )
                    self._pruned = now
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            pooled.close()

    def _run(self, receive: Callable[[str], None], missed: Callable[[], None], after: int) -> None:
        pooled = self._connect()
        connection: Any = pooled.driver_connection
        try:
            failed = False
            while not self._stopping.wait(self._poll):
                try:
                    rows = connection.execute(
                        "SELECT seq, origin, payload FROM change_log WHERE seq > ? ORDER BY seq",
                        (after,),
                    ).fetchall()
                except Exception:
                    log.exception("polling the change log failed")
                    failed = True
                    continue
                if failed:  # rows older than KEEP_SECONDS may have gone meanwhile
                    missed()
                    failed = False
                for seq, origin, payload in rows:
                    after = seq
                    if origin != self.origin:
                        receive(payload)
        finally:
            pooled.close()

    def close(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
