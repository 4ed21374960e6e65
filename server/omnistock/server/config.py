"""Server configuration: flags, else OMNISTOCK_* environment variables, else defaults."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta

from omnistock.server.domain.reservations import TtlPolicy
from omnistock.server.domain.stock import DEFAULT_BANDED_MAX_QUANTITY
from omnistock.server.readmodel.stock import DEFAULT_MAXSIZE, DEFAULT_TTL_SECONDS
from omnistock.server.service.retention import Retention
from omnistock.server.store.database import DEFAULT_DATABASE_URL
from omnistock.server.store.replicas import DEFAULT_MAX_LAG_SECONDS

DEFAULT_LISTEN = "127.0.0.1:50051"
KEEP = Retention()


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"${name} must be 1/true/yes/on or 0/false/no/off, got {value!r}")


def env_count(name: str, default: int, *, least: int = 1) -> int:
    """A whole number of at least ``least`` from the environment, else ``default``."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        count = int(value)
    except ValueError:
        count = least - 1
    if count < least:
        raise ValueError(f"${name} must be a whole number of at least {least}, got {value!r}")
    return count


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything `omnistock serve` can be told.

    >>> ServerConfig(listen="127.0.0.1:0", database_url="sqlite:///:memory:").demo
    False
    """

    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL streaming replicas for reads (docs/scaling.md), and the most seconds a
    # replica may lag before it leaves the rotation.
    read_database_urls: tuple[str, ...] = ()
    replica_max_lag: float = DEFAULT_MAX_LAG_SECONDS
    demo: bool = False
    db_threads: int = 8
    grace_seconds: float = 10.0
    read_cache_size: int = DEFAULT_MAXSIZE
    read_cache_ttl: float = DEFAULT_TTL_SECONDS
    log_level: str = "INFO"
    # Reservations: each method's default and longest hold, and how often lapsed holds
    # are recorded as EXPIRED (they stop counting the moment they lapse regardless).
    hold_ttls: TtlPolicy = field(default_factory=TtlPolicy)
    sweep_seconds: float = 5.0
    # Server processes sharing the port (pre-forked); and how often a process on SQLite
    # polls the change log for other processes' writes.
    workers: int = 1
    change_poll_seconds: float = 0.02
    # Security: every call but health and reflection needs an API key, unless the server
    # runs insecure (a demo; it says so loudly). TLS when a certificate is given; mTLS
    # (client certificates required) when a client CA is given too.
    insecure: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Seconds a database statement may run (PostgreSQL statement_timeout).
    db_timeout_seconds: float = 30.0
    # The most units a key without the EXACT grant may ask for on one line (searches,
    # fulfilment options, holds): each answer says whether that many are there.
    banded_max_quantity: int = DEFAULT_BANDED_MAX_QUANTITY
    # Seconds a key's lookup is trusted: a revoked key stops working within this, open
    # streams included. Failed authentication per peer address: a bucket of this many,
    # refilled at this rate.
    key_cache_seconds: float = 5.0
    auth_failure_burst: int = 30
    auth_failures_per_second: float = 1.0
    # Operations (docs/operations.md): Prometheus /metrics on this HOST:PORT ("" for none);
    # traces over OTLP/gRPC to this endpoint ("" for none); a log line per call; text or
    # JSON log lines; at SIGTERM, seconds of NOT_SERVING before the grace period begins;
    # how often readiness (omnistock.ready) checks the database.
    metrics_listen: str = ""
    otlp_endpoint: str = ""
    access_log: bool = False
    log_format: str = "text"
    drain_seconds: float = 0.0
    ready_check_seconds: float = 2.0

    # Rate limits (docs/security.md "Rate limits across processes"): "local" (each process
    # its own bucket), "database" or "redis" (one bucket per key, shared, leased in small
    # parts); "" picks: redis with a Redis URL, else database, except local for one
    # process on SQLite. How long the shared store may take to answer before the process
    # falls back to its own bucket for a second ($OMNISTOCK_RATE_LIMIT_TIMEOUT only).
    rate_limits: str = ""
    redis_url: str = ""
    rate_limit_timeout: float = 0.25

    # Bring the schema up to date at start (off when a job runs `omnistock migrate`).
    migrate: bool = True
    # How long audit entries and finished reservations are kept (None: for ever).
    retention: Retention = field(default_factory=Retention)

    @classmethod
    def from_env(cls) -> ServerConfig:
        """The configuration the environment gives; ValueError names a bad variable."""
        return cls(
            listen=parse_listen(_env("OMNISTOCK_LISTEN", DEFAULT_LISTEN), "$OMNISTOCK_LISTEN"),
            database_url=_env("OMNISTOCK_DATABASE_URL", DEFAULT_DATABASE_URL),
            # Several replicas: URLs separated by spaces.
            read_database_urls=tuple(_env("OMNISTOCK_READ_DATABASE_URL", "").split()),
            replica_max_lag=env_seconds("OMNISTOCK_REPLICA_MAX_LAG", DEFAULT_MAX_LAG_SECONDS),
            demo=env_flag("OMNISTOCK_DEMO"),
            db_threads=env_count("OMNISTOCK_DB_THREADS", 8),
            grace_seconds=env_seconds("OMNISTOCK_GRACE_SECONDS", 10),
            log_level=parse_log_level(_env("OMNISTOCK_LOG_LEVEL", "INFO"), "$OMNISTOCK_LOG_LEVEL"),
            read_cache_size=env_count("OMNISTOCK_READ_CACHE_SIZE", DEFAULT_MAXSIZE, least=0),
            read_cache_ttl=env_seconds("OMNISTOCK_READ_CACHE_TTL", DEFAULT_TTL_SECONDS),
            hold_ttls=hold_ttls_from(dict(os.environ), prefix="OMNISTOCK_"),
            sweep_seconds=env_seconds("OMNISTOCK_SWEEP_SECONDS", 5),
            workers=env_count("OMNISTOCK_WORKERS", 1),
            insecure=env_flag("OMNISTOCK_INSECURE"),
            tls_cert=_env("OMNISTOCK_TLS_CERT", ""),
            tls_key=_env("OMNISTOCK_TLS_KEY", ""),
            tls_client_ca=_env("OMNISTOCK_TLS_CLIENT_CA", ""),
            db_timeout_seconds=env_seconds("OMNISTOCK_DB_TIMEOUT_SECONDS", 30),
            banded_max_quantity=env_count(
                "OMNISTOCK_BANDED_MAX_QUANTITY", DEFAULT_BANDED_MAX_QUANTITY
            ),
            key_cache_seconds=env_seconds("OMNISTOCK_KEY_CACHE_SECONDS", 5),
            auth_failure_burst=env_count("OMNISTOCK_AUTH_FAILURE_BURST", 30),
            auth_failures_per_second=env_seconds("OMNISTOCK_AUTH_FAILURES_PER_SECOND", 1),
            migrate=not env_flag("OMNISTOCK_NO_MIGRATE"),
            rate_limits=parse_rate_limits(
                os.environ.get("OMNISTOCK_RATE_LIMITS", ""), "$OMNISTOCK_RATE_LIMITS"
            ),
            redis_url=os.environ.get("OMNISTOCK_REDIS_URL", ""),
            rate_limit_timeout=env_seconds("OMNISTOCK_RATE_LIMIT_TIMEOUT", 0.25),
            retention=Retention(
                audit=env_retention("OMNISTOCK_AUDIT_RETENTION", KEEP.audit),
                reservations=env_retention("OMNISTOCK_RESERVATION_RETENTION", KEEP.reservations),
            ),
            metrics_listen=os.environ.get("OMNISTOCK_METRICS_LISTEN", ""),
            otlp_endpoint=os.environ.get(
                "OMNISTOCK_OTLP_ENDPOINT", os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
            ),
            access_log=env_flag("OMNISTOCK_ACCESS_LOG"),
            log_format=os.environ.get("OMNISTOCK_LOG_FORMAT", "text"),
            drain_seconds=float(os.environ.get("OMNISTOCK_DRAIN_SECONDS", "0")),
            ready_check_seconds=float(os.environ.get("OMNISTOCK_READY_CHECK_SECONDS", "2")),
        )


RATE_LIMIT_MODES = ("local", "database", "redis")


def parse_rate_limits(text: str, name: str = "--rate-limits") -> str:
    """One of RATE_LIMIT_MODES, or "" (chosen from the rest of the configuration)."""
    if text.strip().lower() not in ("", *RATE_LIMIT_MODES):
        raise ValueError(f"{name} {text!r} is not one of {', '.join(RATE_LIMIT_MODES)}")
    return text.strip().lower()


def rate_limit_mode(config: ServerConfig) -> str:
    """Where keys' token buckets are kept: the mode given, else redis with a Redis URL,
    else database, except local for one process on SQLite (nothing to share with).

    >>> rate_limit_mode(ServerConfig(database_url="postgresql://db/omnistock"))
    'database'
    >>> rate_limit_mode(ServerConfig(database_url="sqlite:///o.db", redis_url="redis://r"))
    'redis'
    >>> rate_limit_mode(ServerConfig(database_url="sqlite:///o.db"))
    'local'
    >>> rate_limit_mode(ServerConfig(database_url="sqlite:///o.db", workers=2))
    'database'
    """
    if config.rate_limits:
        return config.rate_limits
    if config.redis_url:
        return "redis"
    if config.database_url.startswith("sqlite") and config.workers == 1:
        return "local"
    return "database"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_seconds(name: str, default: float) -> float:
    """A finite number of at least 0 from the environment, else ``default``."""
    value = os.environ.get(name)
    if value is None:
        return float(default)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"${name} must be a number of at least 0, got {value!r}")
    return number


def parse_listen(text: str, name: str = "--listen") -> str:
    """HOST:PORT with a port from 0 to 65535 (0: any free port); IPv6 hosts in brackets.

    >>> parse_listen("[::]:50051")
    '[::]:50051'
    """
    host, colon, port = text.strip().rpartition(":")
    fix = "give HOST:PORT, such as 127.0.0.1:50051 or 0.0.0.0:50051"
    if not colon or not host or (":" in host and not host.startswith("[")):
        raise ValueError(f"{name} {text!r} has no port: {fix}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{name} {text!r}: the port must be a number from 0 to 65535: {fix}")
    return f"{host}:{int(port)}"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(text: str, name: str = "--log-level") -> str:
    """One of LOG_LEVELS, in any case."""
    if text.strip().upper() not in LOG_LEVELS:
        raise ValueError(f"{name} {text!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return text.strip().upper()


HOLD_TTL_SETTINGS = {
    "PICKUP_HOLD_TTL": "pickup_default",
    "PICKUP_HOLD_MAX_TTL": "pickup_max",
    "CHECKOUT_HOLD_TTL": "checkout_default",
    "CHECKOUT_HOLD_MAX_TTL": "checkout_max",
}


def hold_ttls_from(values: dict[str, str | None], *, prefix: str = "") -> TtlPolicy:
    """A TtlPolicy from settings named as HOLD_TTL_SETTINGS (with ``prefix``); unset or
    None values keep the default."""
    chosen = {}
    for name, attribute in HOLD_TTL_SETTINGS.items():
        if (value := values.get(prefix + name)) is not None:
            try:
                chosen[attribute] = parse_duration(value)
            except ValueError as error:
                raise ValueError(f"${prefix}{name}: {error}") from None
    return TtlPolicy(**chosen)


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_retention(text: str) -> timedelta | None:
    """A duration such as 30d, or 'never' (None: kept for ever).

    >>> parse_retention("never") is None
    True
    """
    return None if text.strip().lower() == "never" else parse_duration(text)


def env_retention(name: str, default: timedelta | None) -> timedelta | None:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return parse_retention(value)
    except ValueError as error:
        raise ValueError(f"${name}: {error} (or never)") from None


def parse_duration(text: str) -> timedelta:
    """'90' or '90s', '15m', '2h', '3d'.

    >>> parse_duration("15m")
    datetime.timedelta(seconds=900)
    """
    match = _DURATION.fullmatch(text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a positive duration such as 90s, 15m or 2h: {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
