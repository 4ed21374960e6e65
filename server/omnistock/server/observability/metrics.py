"""Prometheus metrics: per-method call figures, and the business gauges, on ``/metrics``.

Call figures (the names grpc-ecosystem's go-grpc-prometheus uses, so stock dashboards fit):

- ``grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}``
- ``grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type, grpc_code}``, a
  histogram (health checks and reflection are not counted).

They are recorded on the call's path: a dict lookup, a sum and a bucket (``RpcMetrics``).
Everything else (``Gauges``) is computed when Prometheus scrapes, never on a call's path:
gauges that need the database read it at most once every ``min_interval`` seconds, with
a connection of their own, and a bounded number of rows.

Each process has its own registry and endpoint. With ``serve --workers N`` worker ``i``
(from 0) serves ``/metrics`` on the ``--metrics-listen`` port plus ``i``: scrape each
(docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("omnistock.metrics")

# Reads answer in well under a millisecond; feeds and searches may take seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_LABELS = ("grpc_service", "grpc_method", "grpc_type", "grpc_code")


class RpcMetrics(Collector):
    """The call figures, registered on ``registry``.

    A call adds to plain Python counters (a sum and a bucket count, one ``bisect``), and
    the scrape turns them into Prometheus' families. prometheus-client's own Counter and
    Histogram take a lock for each of their four updates a call: 5 us a call against
    under 0.5 us here (a loop of 200,000 calls on the 2-core test machine), where 5 us
    would be several percent of the server's CPU at GetAvailability's peak. What it costs: the
    updates are not atomic together, so a scrape made in the middle of one may see its
    bucket count without its seconds; every count is read from the buckets, so counts
    and buckets always agree. Calls record on the event loop's thread only.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        # (service, method, type) -> status code -> [seconds in all, count per bucket...]
        self._series: dict[tuple[str, str, str], dict[grpc.StatusCode, list[float]]] = {}
        registry.register(self)

    def recorder(self, method: str, kind: str) -> Callable[[grpc.StatusCode, float], None]:
        """What one method's calls report to: ``record(code, seconds)``."""
        service, _, name = method.strip("/").partition("/")
        by_code = self._series.setdefault((service, name, kind), {})
        bounds = LATENCY_BUCKETS
        width = len(bounds) + 2  # the sum, each bucket, +Inf

        def record(code: grpc.StatusCode, seconds: float) -> None:
            figures = by_code.get(code)
            if figures is None:
                figures = by_code[code] = [0.0] * width
            figures[0] += seconds
            figures[1 + bisect_left(bounds, seconds)] += 1

        return record

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        handled = CounterMetricFamily(
            "grpc_server_handled_total",
            "Calls completed on the server, by method and status code.",
            labels=_LABELS,
        )
        seconds = HistogramMetricFamily(
            "grpc_server_handling_seconds",
            "Seconds from a call's start to its end (a stream: its whole life), by method and"
            " status code.",
            labels=_LABELS,
        )
        for (service, name, kind), by_code in list(self._series.items()):
            for code, live in list(by_code.items()):
                figures = list(live)  # one copy, then consistent counts
                labels = [service, name, kind, code.name]
                cumulative, buckets = 0.0, []
                for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), figures[1:], strict=True):
                    cumulative += count
                    buckets.append((str(bound), cumulative))
                handled.add_metric(labels, cumulative)
                seconds.add_metric(labels, buckets, sum_value=figures[0])
        yield handled
        yield seconds


@dataclass(frozen=True, slots=True)
class FeedAge:
    """A location's feed: the age of the newest source time its feeds carried (None: it
    never sent one), and whether that is past the location's freshness budget (or it
    never sent one): the freshness rule of its records, for the location as a whole."""

    location_id: str
    age_seconds: float | None
    stale: bool


@dataclass(frozen=True, slots=True)
class DatabaseFigures:
    feeds: list[FeedAge]
    active_holds: int


@dataclass(frozen=True, slots=True)
class ReplicaFigures:
    """A read replica as its watcher last saw it (store/replicas.py)."""

    name: str  # host:port/database
    in_rotation: bool
    lag_seconds: float | None  # None: unreachable
    reads: int


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """What the process knows without the database, read at each scrape."""

    read_cache_hits: int
    read_cache_misses: int
    change_bus_lag_seconds: float | None
    open_watch_streams: int
    pool_size: int
    pool_checked_out: int
    # With --read-database-url: each replica, and the reads the primary served instead.
    replicas: tuple[ReplicaFigures, ...] = ()
    primary_reads: int = 0


class Gauges(Collector):
    """The business gauges, computed at scrape time.

    ``process`` is cheap (counters the process keeps). ``database`` reads the database;
    its answer is kept ``min_interval`` seconds, and a failing read leaves the database
    gauges out of that scrape (``omnistock_database_figures_ok`` says 0) rather than
    failing the scrape.
    """

    def __init__(
        self,
        *,
        process: Callable[[], ProcessFigures],
        database: Callable[[], DatabaseFigures],
        min_interval: float = 10.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._process = process
        self._database = database
        self._min_interval = min_interval
        self._timer = timer
        self._lock = threading.Lock()
        self._cached: tuple[float, DatabaseFigures | None] | None = None

    def _database_figures(self) -> DatabaseFigures | None:
        with self._lock:  # concurrent scrapes make one read
            now = self._timer()
            if self._cached is not None and now - self._cached[0] < self._min_interval:
                return self._cached[1]
            try:
                figures: DatabaseFigures | None = self._database()
            except Exception:
                log.warning("reading the database gauges failed", exc_info=True)
                figures = None
            self._cached = (now, figures)
            return figures

    def describe(self) -> list[Any]:
        # Without this the registry collects at registration to learn the names: a
        # database read at start-up, kept for min_interval.
        return []

    def collect(self) -> Iterator[Any]:
        process = self._process()
        yield CounterMetricFamily(
            "omnistock_read_cache_hits",
            "Point reads answered from the read cache.",
            value=process.read_cache_hits,
        )
        yield CounterMetricFamily(
            "omnistock_read_cache_misses",
            "Point reads the read cache did not have (read from the database).",
            value=process.read_cache_misses,
        )
        lookups = process.read_cache_hits + process.read_cache_misses
        yield GaugeMetricFamily(
            "omnistock_read_cache_hit_ratio",
            "Share of point reads answered from the read cache since the process started"
            " (0 before any).",
            value=process.read_cache_hits / lookups if lookups else 0.0,
        )
        if process.change_bus_lag_seconds is not None:
            yield GaugeMetricFamily(
                "omnistock_change_bus_lag_seconds",
                "Seconds between another process publishing its last change and this one"
                " receiving it.",
                value=process.change_bus_lag_seconds,
            )
        yield GaugeMetricFamily(
            "omnistock_watch_streams_open",
            "Watch streams open on this process.",
            value=process.open_watch_streams,
        )
        yield GaugeMetricFamily(
            "omnistock_db_pool_size", "Connections the pool keeps.", value=process.pool_size
        )
        yield GaugeMetricFamily(
            "omnistock_db_pool_checked_out",
            "Pooled connections in use now.",
            value=process.pool_checked_out,
        )
        yield from _replica_families(process)
        figures = self._database_figures()
        yield GaugeMetricFamily(
            "omnistock_database_figures_ok",
            "1 when the last read of the database gauges succeeded.",
            value=0 if figures is None else 1,
        )
        if figures is None:
            return
        yield GaugeMetricFamily(
            "omnistock_active_holds",
            "Reservations ACTIVE and not lapsed.",
            value=figures.active_holds,
        )
        yield GaugeMetricFamily(
            "omnistock_locations_stale_feeds",
            "Active locations whose newest fed source time is older than their freshness"
            " budget, or that never sent a feed.",
            value=sum(1 for feed in figures.feeds if feed.stale),
        )
        ages = GaugeMetricFamily(
            "omnistock_feed_age_seconds",
            "Age in seconds of the newest source time each active location's feeds"
            " (snapshots and deltas) carried.",
            labels=["location_id"],
        )
        for feed in figures.feeds:
            if feed.age_seconds is not None:
                ages.add_metric([feed.location_id], feed.age_seconds)
        yield ages


def _replica_families(process: ProcessFigures) -> Iterator[Any]:
    """The read replicas' figures (none without replicas)."""
    if not process.replicas:
        return
    rotation = GaugeMetricFamily(
        "omnistock_read_replica_in_rotation",
        "1 when the read replica takes reads: reachable and lagging no more than"
        " --replica-max-lag.",
        labels=["replica"],
    )
    lag = GaugeMetricFamily(
        "omnistock_read_replica_lag_seconds",
        "Seconds since the primary first showed a WAL position the replica has not replayed"
        " (0: caught up; +Inf: behind what its watcher first saw; absent: unreachable).",
        labels=["replica"],
    )
    reads = CounterMetricFamily(
        "omnistock_database_reads",
        "Stock reads (cache misses, searches, exports) by the database that served them.",
        labels=["database"],
    )
    reads.add_metric(["primary"], process.primary_reads)
    for replica in process.replicas:
        rotation.add_metric([replica.name], 1 if replica.in_rotation else 0)
        if replica.lag_seconds is not None:
            lag.add_metric([replica.name], replica.lag_seconds)
        reads.add_metric([replica.name], replica.reads)
    yield rotation
    yield lag
    yield reads


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (HOST may be empty: every address; [::] for IPv6) as (host, port).

    >>> parse_listen("127.0.0.1:9464")
    ('127.0.0.1', 9464)
    """
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"--metrics-listen must be HOST:PORT, such as 0.0.0.0:9464, not {listen!r}"
        )
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsEndpoint:
    """``/metrics`` over HTTP on ``listen`` (HOST:PORT; port 0 picks one). Raises OSError
    when it cannot listen there."""

    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        host, port = parse_listen(listen)
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)
