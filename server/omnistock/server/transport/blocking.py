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

    async def write(
        self, fn: Callable[..., T], /, *args: Any, noted: Callable[[T], object], **kwargs: Any
    ) -> T:
        """Run a write on the pool, then hand its result to ``noted`` (which notes it for the
        audit log), even when the call is cancelled while the write runs.

        Cancelling the call (its client went, its deadline passed, its key was revoked)
        does not stop the write's thread, which may still commit. So the cancellation waits
        for the write, and goes on after ``noted`` has seen it: every applied write is
        accounted for. A write that fails is raised as it is."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        future = loop.run_in_executor(self._executor, call)
        cancelled: asyncio.CancelledError | None = None
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError as error:
                if future.cancelled():  # the write never ran
                    raise
                cancelled = cancelled or error
        result = future.result()  # a write that failed raises here
        noted(result)
        if cancelled is not None:
            raise cancelled
        return result

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the pool without waiting for it (a background refresh)."""
        self._executor.submit(fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
