"""Assembles the server: store, services, servicers, interceptors, health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from omnistock.server import redaction
from omnistock.server.config import ServerConfig, rate_limit_mode
from omnistock.server.domain.rate_limits import Grant
from omnistock.server.observability.calls import CallObserver
from omnistock.server.observability.health import HealthStates
from omnistock.server.observability.metrics import (
    DatabaseFigures,
    FeedAge,
    Gauges,
    MetricsEndpoint,
    ProcessFigures,
    ReplicaFigures,
    RpcMetrics,
    new_registry,
)
from omnistock.server.observability.rate_limit_metrics import RateLimitMetrics
from omnistock.server.observability.tracing import Tracing
from omnistock.server.readmodel.channel_queries import ChannelQueries
from omnistock.server.readmodel.channels import ChannelDirectory, ChannelTotals
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.queries import ReadModel
from omnistock.server.readmodel.stock import StockCache
from omnistock.server.service.audit import AuditLog
from omnistock.server.service.availability import AvailabilityService
from omnistock.server.service.changes import ChangeBus, ChannelTransport
from omnistock.server.service.channel_search import ChannelShopping
from omnistock.server.service.channels import ChannelAdmin
from omnistock.server.service.feeds import FeedService
from omnistock.server.service.incoming import IncomingService
from omnistock.server.service.keys import KeyService
from omnistock.server.service.locations import LocationService
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.network_holds import NetworkPlacer
from omnistock.server.service.origins import OriginResolver
from omnistock.server.service.rate_limits import SharedRateLimits
from omnistock.server.service.reservations import ReservationService
from omnistock.server.service.retention import RetentionJob
from omnistock.server.service.watch import WatchHub
from omnistock.server.store.change_bus import change_channel
from omnistock.server.store.channel_reads import ChannelReads
from omnistock.server.store.channel_supply import ChannelSupplyReader
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.feed_status import FeedStatusRepository
from omnistock.server.store.feeds import FeedWriter
from omnistock.server.store.incoming import IncomingStore
from omnistock.server.store.keys import AuditRepository, KeyRepository
from omnistock.server.store.locations import LocationRepository
from omnistock.server.store.opening import open_read_replicas
from omnistock.server.store.operations import OperationsReads
from omnistock.server.store.postcodes import PostcodeRepository
from omnistock.server.store.replicas import ReplicaSet
from omnistock.server.store.reservations import ReservationStore
from omnistock.server.store.retention import purge
from omnistock.server.store.secrets import shared_secret
from omnistock.server.store.stock import StockRepository
from omnistock.server.transport.auth import Authenticator, RateLimiter
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.channels import ChannelServicer
from omnistock.server.transport.feeds import FeedServicer
from omnistock.server.transport.interceptors import InterceptorLayer
from omnistock.server.transport.pages import SECRET_NAME as PAGE_TOKEN_SECRET
from omnistock.server.transport.pages import PageTokens
from omnistock.server.transport.reservations import ReservationServicer
from omnistock.server.transport.scope import ScopeGuard
from omnistock.server.transport.servicers import AvailabilityServicer, LocationServicer
from omnistock.server.transport.watch import availability_part
from omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    channel_pb2,
    channel_pb2_grpc,
    feed_pb2,
    feed_pb2_grpc,
    location_pb2,
    location_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)

log = logging.getLogger("omnistock.server")

SERVICE_NAMES = tuple(
    file.services_by_name[name].full_name
    for file, name in (
        (location_pb2.DESCRIPTOR, "LocationService"),
        (availability_pb2.DESCRIPTOR, "AvailabilityService"),
        (feed_pb2.DESCRIPTOR, "FeedService"),
        (reservation_pb2.DESCRIPTOR, "ReservationService"),
        (channel_pb2.DESCRIPTOR, "ChannelService"),
    )
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Young-generation (gen 1) collections between full ones (CPython's default: 10).
FULL_COLLECTION_EVERY = 1_000


class ListenError(OSError):
    """The server could not bind its listen address."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class OmnistockServer:
    """One server process. ``await start()``, then ``await stop()`` (or ``wait()``)."""

    def __init__(self, config: ServerConfig, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self._clock = clock
        self.engine = create_database_engine(
            config.database_url,
            pool_size=config.db_threads,
            statement_timeout=config.db_timeout_seconds,
        )
        if config.migrate:
            migrate(self.engine)
        # Reads that may come from a replica go where the replica set says (store/replicas.py).
        self.replicas = ReplicaSet(
            self.engine,
            open_read_replicas(
                config.database_url,
                config.read_database_urls,
                pool_size=config.db_threads,
                statement_timeout=config.db_timeout_seconds,
            ),
            max_lag=config.replica_max_lag,
        )
        self.locations_repo = LocationRepository(self.engine)
        self.stock_repo = StockRepository(self.engine, replicas=self.replicas)
        self.feed_writer = FeedWriter(self.engine)
        if config.demo:
            from omnistock.server.demo import seed_if_empty

            seed_if_empty(
                self.locations_repo,
                self.feed_writer,
                now=clock(),
                channels=ChannelRepository(self.engine),
            )
        self.directory = LocationDirectory(self.locations_repo)
        self.directory.refresh()
        # Operations: traces (off without an OTLP endpoint), metrics (off without an
        # endpoint to serve them on), the access log, and the reads behind readiness and
        # the business gauges, on connections of their own.
        self.tracing = Tracing.otlp(config.otlp_endpoint) if config.otlp_endpoint else None
        tracer = self.tracing.tracer if self.tracing is not None else None
        self.metrics_registry = new_registry() if config.metrics_listen else None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.operations = OperationsReads(config.database_url)
        self.runner = BlockingRunner(config.db_threads, tracer=tracer)
        self.stock_cache = StockCache(maxsize=config.read_cache_size, ttl=config.read_cache_ttl)
        # Every write publishes what it changed; the caches (and watches) listen, here and,
        # through the store's change channel, in every other process on the database.
        positions = self.replicas if self.replicas.replicas else None
        self.changes = ChangeBus(
            ChannelTransport(
                change_channel(self.engine, poll_seconds=config.change_poll_seconds),
                positions=positions,
            ),
            positions=positions,
        )
        self.audit = AuditLog(AuditRepository(self.engine))
        self.channels_repo = ChannelRepository(self.engine)
        self.rate_limits, self._close_rate_limits = shared_rate_limits(config)
        self.layer = InterceptorLayer(
            CallObserver(
                metrics=None
                if self.metrics_registry is None
                else RpcMetrics(self.metrics_registry),
                tracer=tracer,
                access_log=config.access_log,
            ),
            auth=Authenticator(
                KeyService(KeyRepository(self.engine), self.channels_repo),
                self.runner.run,
                insecure=config.insecure,
                cache_seconds=config.key_cache_seconds,
                failure_burst=config.auth_failure_burst,
                failures_per_second=config.auth_failures_per_second,
                limiter=RateLimiter(shared=self.rate_limits),
            ),
            audit=self.audit,
            clock=clock,
            scopes=ScopeGuard(existing_locations=self._existing_locations),
        )
        # Every process on the database signs page tokens with the same key.
        pages = PageTokens(shared_secret(self.engine, PAGE_TOKEN_SECRET))
        self.health = health.aio.HealthServicer()
        self.health_states = HealthStates(
            self.health,
            SERVICE_NAMES,
            ping=self.operations.ping,
            interval=config.ready_check_seconds,
        )
        self.server = aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Clients may keep connections alive with a ping every 10 s or more (the SDK
                # pings every 30 s while calls are open); more often is refused.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # Pre-forked workers (serve --workers N) share one port.
                ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
            ],
        )
        registrar = self.layer.register(self.server)
        self.locations_service = LocationService(
            self.locations_repo, self.directory, clock=clock, changes=self.changes
        )
        location_pb2_grpc.add_LocationServiceServicer_to_server(
            LocationServicer(self.locations_service, self.runner, pages), registrar
        )
        self.availability = AvailabilityService(
            self.stock_repo, self.directory, clock=clock, cache=self.stock_cache
        )
        self.shopping = ShoppingService(
            self.stock_repo,
            self.directory,
            PostcodeRepository(self.engine),
            clock=clock,
            cache=self.stock_cache,
        )
        self.channel_queries = ChannelQueries(
            directory=ChannelDirectory(
                ChannelRepository(self.engine).view,
                lambda: self.directory.by_id(),
                lambda: self.directory.generation,
                timer=time.monotonic,
            ),
            totals=ChannelTotals(),
            incoming=IncomingStore(self.engine),
            reads=ChannelReads(self.engine),
            records=self.shopping.read_sku,
            cached_records=self.stock_cache.get_sku,
            clock=clock,
            run=self.runner.run,
        )
        # The read model: every cached copy, invalidated by the change bus alone.
        self.reads = ReadModel(
            availability=self.availability,
            shopping=self.shopping,
            directory=self.directory,
            cache=self.stock_cache,
            run=self.runner.run,
            background=self.runner.submit,
            channels=self.channel_queries,
        )
        self.changes.subscribe(self.reads.apply)
        self.watches = WatchHub(
            self.availability,
            self.runner.run,
            present=availability_part,
            read=self.reads.pair_views,
        )
        self.changes.subscribe(self.watches.on_changes)
        self.availability_servicer = AvailabilityServicer(
            self.availability,
            self.reads,
            self.shopping,
            self.runner,
            self.watches,
            banded_max_quantity=config.banded_max_quantity,
            channel_shopping=ChannelShopping(
                self.shopping, ChannelRepository(self.engine), ChannelSupplyReader(self.engine)
            ),
        )
        availability_pb2_grpc.add_AvailabilityServiceServicer_to_server(
            self.availability_servicer, registrar
        )
        self.incoming_store = IncomingStore(self.engine)
        feed_pb2_grpc.add_FeedServiceServicer_to_server(
            FeedServicer(
                FeedService(
                    self.feed_writer,
                    FeedStatusRepository(self.engine, reader=self.stock_repo.reader),
                    self.directory,
                    clock=clock,
                    changes=self.changes,
                ),
                IncomingService(
                    self.incoming_store, self.directory, clock=clock, changes=self.changes
                ),
                self.runner,
                pages,
            ),
            registrar,
        )
        self.reservations = ReservationService(
            ReservationStore(self.engine),
            self.stock_repo.on_primary(),  # a refusal states what the hold saw
            self.directory,
            clock=clock,
            changes=self.changes,
            ttl=config.hold_ttls,
            placer=NetworkPlacer(
                ChannelRepository(self.engine),
                ChannelSupplyReader(self.engine),
                self.directory,
                OriginResolver(self.directory, PostcodeRepository(self.engine)),
            ),
        )
        reservation_pb2_grpc.add_ReservationServiceServicer_to_server(
            ReservationServicer(
                self.reservations,
                self.runner,
                pages,
                banded_max_quantity=config.banded_max_quantity,
            ),
            registrar,
        )
        channel_pb2_grpc.add_ChannelServiceServicer_to_server(
            ChannelServicer(
                ChannelAdmin(
                    self.channels_repo, self.directory.known, clock=clock, changes=self.changes
                ),
                self.runner,
                pages,
            ),
            registrar,
        )
        # Keys bound to channels see their groups' locations: look them up again when
        # groups or channels change, here or in another process.
        self.changes.subscribe(
            lambda changes: (
                self.layer.auth.forget_channel_keys()
                if changes.channels or changes.everything
                else None
            )
        )
        self._sweeper: asyncio.Task[None] | None = None
        self.retention = RetentionJob(
            partial(purge, self.engine), self.runner.run, config.retention, clock
        )
        self._retention_task: asyncio.Task[None] | None = None
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        try:
            if config.tls_cert:
                self.port = self.server.add_secure_port(config.listen, server_credentials(config))
            else:
                self.port = self.server.add_insecure_port(config.listen)
        except RuntimeError as error:
            raise ListenError(
                f"cannot listen on {config.listen}: address in use or not valid"
            ) from error
        if self.metrics_registry is not None:
            self.metrics_registry.register(self._gauges())
            if self.rate_limits is not None:
                self.metrics_registry.register(RateLimitMetrics(self.rate_limits))
            try:
                self.metrics_endpoint = MetricsEndpoint(
                    self.metrics_registry, config.metrics_listen
                )
            except (OSError, ValueError) as error:
                raise ListenError(
                    f"cannot serve metrics on {config.metrics_listen}: {error}"
                ) from error
            log.info("metrics on http://%s/metrics", config.metrics_listen)

    async def _existing_locations(self, location_ids: list[str]) -> set[str]:
        return await self.runner.run(self.directory.known, location_ids)

    async def start(self) -> int:
        # Start-up objects live as long as the process: keep the collector off them.
        gc.collect()
        gc.freeze()
        # A full collection walks every object the read model keeps (hundreds of thousands
        # of records and totals): 250-400 ms with the event loop stopped. By default one
        # came every 10 young-generation collections once a quarter more objects had been
        # kept, every 4-40 s under load; FULL_COLLECTION_EVERY puts them minutes apart.
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
        self.watches.bind(asyncio.get_running_loop())
        self.replicas.start()
        self.changes.start()
        await self.server.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._retention_task = asyncio.get_running_loop().create_task(self.retention.run_forever())
        await self.health_states.start()
        if self.config.insecure:
            log.warning(
                "INSECURE MODE: no API keys are checked and every caller is an admin who sees "
                "exact stock. For demos and tests only; never expose this port."
            )
        log.info(
            "omnistock listening on port %d (database: %s)",
            self.port,
            self.engine.url.render_as_string(),
        )
        return self.port

    def _gauges(self) -> Gauges:
        def process() -> ProcessFigures:
            pool: Any = self.engine.pool
            return ProcessFigures(
                read_cache_hits=self.stock_cache.hits,
                read_cache_misses=self.stock_cache.misses,
                change_bus_lag_seconds=self.changes.lag_seconds,
                open_watch_streams=self.watches.open_streams,
                pool_size=pool.size() if hasattr(pool, "size") else 0,
                pool_checked_out=pool.checkedout() if hasattr(pool, "checkedout") else 0,
                replicas=tuple(
                    ReplicaFigures(r.name, r.in_rotation, r.lag_seconds, r.reads)
                    for r in self.replicas.states()
                ),
                primary_reads=self.replicas.primary_reads,
            )

        return Gauges(
            process=process, database=partial(database_figures, self.operations, self._clock)
        )

    async def stop(self, grace: float | None = None, *, drain: float = 0.0) -> None:
        """Say NOT_SERVING; keep serving for ``drain`` seconds, so load balancers see it
        and send no more; let in-flight calls finish within the grace period; close."""
        await self.health_states.stop_serving()
        if drain > 0:
            log.info("draining: NOT_SERVING, still serving calls for %gs", drain)
            await asyncio.sleep(drain)
        await self.server.stop(self.config.grace_seconds if grace is None else grace)
        for task in (self._sweeper, self._retention_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.runner.shutdown()
        await self._close_rate_limits()
        self.changes.close()
        self.replicas.close()
        self.audit.close()
        self.stock_repo.close()
        self.engine.dispose()
        self.operations.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        if self.tracing is not None:
            self.tracing.close()
        log.info("omnistock stopped")

    async def _sweep(self) -> None:
        """Record lapsed holds as EXPIRED now and then. (Reads stop counting a hold the
        moment it lapses; this only makes the state and ``reserved`` say so.)"""
        while True:
            await asyncio.sleep(self.config.sweep_seconds)
            try:
                expired = await self.runner.run(self.reservations.expire_due)
            except Exception:  # the next round tries again
                log.exception("expiring lapsed reservations failed")
                continue
            if expired:
                log.info("expired %d reservation lines", expired)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def _nothing() -> None:
    pass


def shared_rate_limits(
    config: ServerConfig,
) -> tuple[SharedRateLimits | None, Callable[[], Awaitable[None]]]:
    """Keys' shared token buckets as ``config`` asks (None: each process its own), and
    how to close them."""
    mode = rate_limit_mode(config)
    if mode == "redis":
        from omnistock.server.store.rate_limits_redis import RedisBuckets

        redis = RedisBuckets(config.redis_url, timeout=config.rate_limit_timeout)
        limits = SharedRateLimits(redis.take, store="redis", timeout=config.rate_limit_timeout)
        return limits, redis.close
    if mode == "database":
        from omnistock.server.store.rate_limits import DatabaseBuckets

        buckets = DatabaseBuckets(config.database_url, timeout=config.rate_limit_timeout)
        # Threads of their own: a lease never queues behind the reads' pool.
        runner = BlockingRunner(2)

        async def take(key_id: str, rate: float, burst: int, want: int) -> Grant:
            return await runner.run(buckets.take, key_id, rate, burst, want)

        async def close() -> None:
            runner.shutdown()
            buckets.close()

        limits = SharedRateLimits(take, store="database", timeout=config.rate_limit_timeout)
        return limits, close
    return None, _nothing


def worker_metrics(config: ServerConfig, index: int) -> ServerConfig:
    """Worker ``index`` (from 0) serves its /metrics on the configured port plus ``index``."""
    if not config.metrics_listen:
        return config
    host, _, port = config.metrics_listen.rpartition(":")
    return replace(config, metrics_listen=f"{host}:{int(port) + index}")


def database_figures(
    operations: OperationsReads, clock: Callable[[], datetime] = utc_now
) -> DatabaseFigures:
    """The business gauges that need the database: two bounded queries."""
    now_us = int(clock().timestamp() * 1_000_000)
    feeds = [
        FeedAge(
            feed.location_id,
            None if feed.last_feed_us is None else (now_us - feed.last_feed_us) / 1_000_000,
            feed.last_feed_us is None or now_us - feed.last_feed_us > feed.freshness_budget_us,
        )
        for feed in operations.location_feeds()
    ]
    return DatabaseFigures(feeds=feeds, active_holds=operations.active_holds(now_us))


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    """TLS from the configured PEM files; with a client CA, client certificates are required."""
    chain = Path(config.tls_cert).read_bytes()
    key = Path(config.tls_key).read_bytes()
    client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    redaction.install()  # gRPC logs some metadata values whole: keys among them
    server = OmnistockServer(config)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info(
        "shutting down: NOT_SERVING, drain %gs, then in-flight calls finish (grace %gs)",
        config.drain_seconds,
        config.grace_seconds,
    )
    await server.stop(drain=config.drain_seconds)


def serve_workers(config: ServerConfig) -> int:
    """Run ``config.workers`` server processes on one port (SO_REUSEPORT), pre-forked
    before any gRPC server or channel exists in this process (gRPC's threads do not
    survive a fork). The parent brings the schema up to date and seeds the demo data
    once, forwards SIGTERM and SIGINT, and exits when the workers have; if one worker
    fails, it stops the others."""
    engine = create_database_engine(config.database_url, pool_size=1)
    if config.migrate:
        migrate(engine)
    if config.demo:
        from omnistock.server.demo import seed_if_empty

        seed_if_empty(
            LocationRepository(engine),
            FeedWriter(engine),
            now=utc_now(),
            channels=ChannelRepository(engine),
        )
    engine.dispose()
    worker_config = replace(config, demo=False)
    children: list[int] = []
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:  # a worker
            code = 0
            try:
                asyncio.run(serve(worker_metrics(worker_config, index)))
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)
    log.info("omnistock: %d workers on %s (pids %s)", config.workers, config.listen, children)

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    running = set(children)
    while running:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        running.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0 and not stopping:
            log.error("worker %d exited with %d; stopping the others", pid, code)
            status = code
            forward(signal.SIGTERM, None)
    return status
