"""The shared rate limits' figures on /metrics (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class SharedLimitsFigures(Protocol):
    store: str
    round_trips: int
    failures: int

    @property
    def shared(self) -> bool: ...


class RateLimitMetrics(Collector):
    def __init__(self, limits: SharedLimitsFigures) -> None:
        self._limits = limits

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        labels = ["store"]
        store = [self._limits.store]
        trips = CounterMetricFamily(
            "omnistock_rate_limit_leases",
            "Leases of rate-limit tokens asked of the shared store and answered.",
            labels=labels,
        )
        trips.add_metric(store, self._limits.round_trips)
        yield trips
        failures = CounterMetricFamily(
            "omnistock_rate_limit_store_failures",
            "Lease requests the shared rate-limit store failed or did not answer in time"
            " (the process limits keys on its own meanwhile).",
            labels=labels,
        )
        failures.add_metric(store, self._limits.failures)
        yield failures
        shared = GaugeMetricFamily(
            "omnistock_rate_limit_shared",
            "1 while keys' rate limits are shared; 0 while this process has fallen back to"
            " its own buckets, the shared store unreachable.",
            labels=labels,
        )
        shared.add_metric(store, 1 if self._limits.shared else 0)
        yield shared
