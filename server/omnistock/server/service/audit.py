"""The audit log of write calls: the interceptor layer records an entry for each write,
and a thread of the log's own writes them to the repository in batches, so a write call
never waits for its audit row."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Protocol

from omnistock.server.domain.security import AuditEntry

log = logging.getLogger("omnistock.audit")


class AuditStore(Protocol):
    def write(self, batch: Sequence[AuditEntry]) -> None: ...
    def recent(self, limit: int = 50) -> list[AuditEntry]: ...


class AuditLog:
    """Writes audit entries from a queue on a thread of its own, in batches, so a write
    call never waits for its audit row. ``flush()`` waits until all are written."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[AuditEntry | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="omnistock-audit", daemon=True)
        self._thread.start()

    def record(self, entry: AuditEntry) -> None:
        self._queue.put(entry)

    def flush(self, timeout: float = 10) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        return self._store.recent(limit)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[AuditEntry] = []
            waiting: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._store.write(batch)
                except Exception:
                    log.exception("writing %d audit entries failed", len(batch))
            for event in waiting:
                event.set()
            if stop:
                return
