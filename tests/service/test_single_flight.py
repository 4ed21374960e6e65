"""A burst of misses for one key makes one load, not a stampede."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from omnistock.server.domain.stock import Exposure
from omnistock.server.readmodel.single_flight import SingleFlight
from omnistock.server.service.availability import AvailabilityService
from omnistock.server.testing import InProcessServer


def test_concurrent_callers_share_one_load() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    start = threading.Barrier(20)

    def load() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return 7

    results: list[int] = []

    def caller() -> None:
        start.wait()
        results.append(flight.run("key", load))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [7] * 20 and calls == 1
    assert flight.run("key", lambda: 8) == 8  # a later call loads again


def test_an_error_reaches_every_waiting_caller() -> None:
    flight: SingleFlight[int] = SingleFlight()

    def fail() -> int:
        time.sleep(0.1)
        raise RuntimeError("database down")

    errors: list[str] = []

    def caller() -> None:
        try:
            flight.run("key", fail)
        except RuntimeError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=caller) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["database down"] * 5


class CountingStock:
    """The stock repository, counting reads and slowed so that callers overlap."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reads = 0

    def records_for_sku(self, sku: str, location_ids: Sequence[str] | None) -> Any:
        self.reads += 1
        time.sleep(0.2)
        return self._inner.records_for_sku(sku, location_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_burst_of_misses_for_a_hot_product_reads_the_database_once(tmp_path: Any) -> None:
    with InProcessServer(database_url=f"sqlite:///{tmp_path / 'o.db'}", demo=True) as running:
        app = running.server
        stock = CountingStock(app.stock_repo)
        service = AvailabilityService(stock, app.directory, clock=app.availability._clock)  # type: ignore[arg-type]
        start = threading.Barrier(16)
        answers: list[int] = []

        def shopper() -> None:
            start.wait()
            views = service.get_availability("ELEC-10000", ["NL-AMS-01"], exposure=Exposure.EXACT)
            answers.append(len(views))

        threads = [threading.Thread(target=shopper) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [1] * 16
    assert stock.reads == 1
