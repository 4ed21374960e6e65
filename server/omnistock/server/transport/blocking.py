"""Runs blocking service calls (database work) off the event loop, on a bounded pool."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from omnistock.server.observability.tracing import database_span
from opentelemetry.trace import Tracer

T = TypeVar("T")


class BlockingRunner:
    """``tracer``: each run is a span (``db`` and the function's name), under the call's."""

    def __init__(self, max_workers: int, *, tracer: Tracer | None = None) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="omnistock-db"
        )
        self.tracer = tracer

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        if self.tracer is None:
            return await loop.run_in_executor(self._executor, call)
        with database_span(self.tracer, "db " + getattr(fn, "__qualname__", "call")):
            return await loop.run_in_executor(self._executor, call)

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the pool without waiting for it (a background refresh)."""
        self._executor.submit(fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
