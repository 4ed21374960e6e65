"""Readiness and liveness on grpc.health.v1, and the drain at shutdown.

- ``""`` (liveness) and each omnistock service name: SERVING from start until shutdown.
  They do not follow the database, so a short outage does not get every pod restarted.
- ``omnistock.ready`` (readiness): SERVING while the database answers a query on a new
  connection, checked every ``interval`` seconds; NOT_SERVING when it does not, and
  SERVING again when it does.
- At shutdown every name turns NOT_SERVING first; calls are still served for the drain
  delay, so load balancers see it and stop sending; then the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger("omnistock.health")

READY_SERVICE = "omnistock.ready"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthStates:
    """Runs the readiness probe (``ping``: raises when the database is unreachable; run on
    a thread of its own, not the database pool's, so a busy pool does not look like an
    outage; given ``timeout`` seconds)."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        live_names: Sequence[str],
        *,
        ping: Callable[[], None],
        interval: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        self._servicer = servicer
        self._live_names = ("", *live_names)
        self._ping = ping
        self.interval = interval
        self.timeout = timeout
        self.ready: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        for name in self._live_names:
            await self._servicer.set(name, SERVING)
        await self._check()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _check(self) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping), self.timeout)
            ready = True
        except Exception as error:
            ready = False
            if self.ready is not False:
                log.warning("not ready: the database does not answer (%s)", _first_line(error))
        if self._stopping:
            return
        if ready and self.ready is False:
            log.info("ready: the database answers again")
        if ready != self.ready:
            self.ready = ready
            await self._servicer.set(READY_SERVICE, SERVING if ready else NOT_SERVING)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._check()

    async def stop_serving(self) -> None:
        """Every name NOT_SERVING, for good."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for name in (*self._live_names, READY_SERVICE):
            await self._servicer.set(name, NOT_SERVING)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
