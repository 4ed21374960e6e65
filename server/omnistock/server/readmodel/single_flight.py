"""One load for a burst of misses: concurrent callers with the same key share one call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """``run(key, load)``: the first caller for a key runs ``load``; callers that arrive
    while it runs wait for its result (or its exception) instead of loading again.

    >>> flight: SingleFlight[int] = SingleFlight()
    >>> flight.run("answer", lambda: 42)
    42
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[Hashable, Future[V]] = {}

    def run(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            future = self._loading.get(key)
            leader = future is None
            if future is None:
                future = self._loading[key] = Future()
        if not leader:
            return future.result()
        try:
            result = load()
        except BaseException as error:
            future.set_exception(error)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._loading[key]
