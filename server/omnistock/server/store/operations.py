"""Reads for operators: feed ages, active holds, and whether the database answers.

Each is one bounded query, made on a connection of its own (``OperationsReads`` has its
own small engine), so a scrape or a health probe never takes a connection from calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnistock.server.domain.stock import DEFAULT_STORE_FRESHNESS, DEFAULT_WAREHOUSE_FRESHNESS
from omnistock.server.store.database import normalize_url
from omnistock.server.store.tables import feed_status_table as fs
from omnistock.server.store.tables import locations_table as loc
from omnistock.server.store.tables import reservations_table as rt
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

# The most locations the feed gauges report on (a series each).
MAX_FEED_LOCATIONS = 10_000
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class LocationFeed:
    location_id: str
    # The newest source time its snapshots and deltas carried (microseconds since the
    # epoch): what its stock reflects. None: it never sent one.
    last_feed_us: int | None
    freshness_budget_us: int


class OperationsReads:
    """``database_url``'s answers to operators' questions, on connections made per read
    (a probe must see an outage, not a pooled connection that still works), with a
    connect timeout and a statement timeout of ``timeout`` seconds."""

    def __init__(self, database_url: str, *, timeout: float = 5.0) -> None:
        self.engine: Engine = _probe_engine(database_url, timeout)

    def ping(self) -> None:
        """Raises unless the database answers a query on a new connection."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()

    def location_feeds(self) -> list[LocationFeed]:
        """Every active location's last feed time and freshness budget (at most
        MAX_FEED_LOCATIONS, in id order)."""
        stmt = (
            select(
                loc.c.id,
                loc.c.kind,
                loc.c.freshness_budget_seconds,
                fs.c.last_snapshot_as_of_us,
                fs.c.last_delta_source_us,
            )
            .select_from(loc.outerjoin(fs, fs.c.location_id == loc.c.id))
            .where(loc.c.active.is_(True))
            .order_by(loc.c.id)
            .limit(MAX_FEED_LOCATIONS)
        )
        feeds = []
        with self.engine.connect() as connection:
            for location_id, kind, budget, snapshot_us, delta_us in connection.execute(stmt):
                times = [t for t in (snapshot_us, delta_us) if t is not None]
                default = (
                    DEFAULT_WAREHOUSE_FRESHNESS if kind == "WAREHOUSE" else DEFAULT_STORE_FRESHNESS
                )
                budget_us = (
                    budget * _US if budget is not None else int(default.total_seconds()) * _US
                )
                feeds.append(LocationFeed(location_id, max(times) if times else None, budget_us))
        return feeds

    def active_holds(self, now_us: int) -> int:
        """Reservations ACTIVE and not lapsed."""
        stmt = (
            select(func.count())
            .select_from(rt)
            .where(rt.c.state == "ACTIVE", rt.c.expires_at_us > now_us)
        )
        with self.engine.connect() as connection:
            return int(connection.execute(stmt).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


def _probe_engine(database_url: str, timeout: float) -> Engine:
    url = make_url(normalize_url(database_url))
    if url.get_backend_name() == "postgresql":
        url = url.update_query_dict({"connect_timeout": str(max(1, round(timeout)))})
        return create_engine(
            url,
            poolclass=NullPool,
            connect_args={"options": f"-c statement_timeout={int(timeout * 1000)}"},
        )
    path = url.database or ""
    if path in ("", ":memory:"):  # nothing outside the process to lose
        return create_engine("sqlite://", poolclass=NullPool)
    # SQLite: never create the file (mode=rw) if it went away.
    return create_engine(
        f"sqlite:///file:{path}?mode=rw&uri=true",
        poolclass=NullPool,
        connect_args={"timeout": timeout},
    )
