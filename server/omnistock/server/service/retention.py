"""The retention job: now and then, purge audit entries and finished reservations older
than their configured retention (store/retention.py does the deleting)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omnistock.server.store.retention import Purged

log = logging.getLogger("omnistock.server")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind is kept (None: for ever), and how often the job looks."""

    audit: timedelta | None = timedelta(days=90)
    reservations: timedelta | None = timedelta(days=30)
    every_seconds: float = 3600.0


class RetentionJob:
    def __init__(
        self,
        purge: Callable[..., Purged],
        run: Callable[..., Awaitable[Any]],
        retention: Retention,
        clock: Callable[[], datetime],
    ) -> None:
        self._purge = purge
        self._run = run
        self._retention = retention
        self._clock = clock

    async def run_once(self) -> Purged:
        now = self._clock()
        keep = self._retention
        purged: Purged = await self._run(
            self._purge,
            audit_before=None if keep.audit is None else now - keep.audit,
            reservations_before=None if keep.reservations is None else now - keep.reservations,
        )
        if purged.audit_entries or purged.reservations:
            log.info(
                "retention: purged %d audit entries and %d finished reservations",
                purged.audit_entries,
                purged.reservations,
            )
        return purged

    async def run_forever(self) -> None:
        """Purge at start, then every ``every_seconds``; a failed round is retried next time."""
        if self._retention.audit is None and self._retention.reservations is None:
            return
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("retention purge failed")
            await asyncio.sleep(self._retention.every_seconds)
