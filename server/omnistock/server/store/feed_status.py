"""Reads of feed status and of a location's stock, for status reports and exports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omnistock.server.domain.stock import StockRecord
from omnistock.server.store.reads import _COLUMNS, StockReader, record_from_row
from omnistock.server.store.tables import feed_status_table as fs
from omnistock.server.store.tables import stock_table as st
from sqlalchemy import Engine, func, select


@dataclass(frozen=True, slots=True)
class FeedStatusRecord:
    location_id: str
    last_snapshot_as_of_us: int | None = None
    last_snapshot_received_us: int | None = None
    last_delta_source_us: int | None = None
    last_delta_received_us: int | None = None
    snapshot_count: int = 0
    delta_applied_count: int = 0
    stale_count: int = 0
    rejected_count: int = 0
    record_count: int = 0


class FeedStatusRepository:
    """``reader``: where export pages are read (a replica, with read replicas)."""

    def __init__(self, engine: Engine, *, reader: StockReader | None = None) -> None:
        self._engine = engine
        self._reader = reader

    def for_locations(self, location_ids: Sequence[str]) -> dict[str, FeedStatusRecord]:
        """Status of the given locations that have one, with their record counts."""
        if not location_ids:
            return {}
        ids = list(location_ids)
        with self._engine.connect() as connection:
            counts: dict[str, int] = dict(
                connection.execute(
                    select(st.c.location_id, func.count())
                    .where(st.c.location_id.in_(ids))
                    .group_by(st.c.location_id)
                ).all()
            )
            rows = connection.execute(select(fs).where(fs.c.location_id.in_(ids))).mappings().all()
        found = {
            row["location_id"]: FeedStatusRecord(
                **row, record_count=counts.get(row["location_id"], 0)
            )
            for row in rows
        }
        for location_id, count in counts.items():
            found.setdefault(location_id, FeedStatusRecord(location_id, record_count=count))
        return found

    def stock_page(self, location_id: str, *, after_sku: str, limit: int) -> list[StockRecord]:
        """A location's records in sku order, after ``after_sku``."""
        stmt = (
            select(*_COLUMNS)
            .where(st.c.location_id == location_id, st.c.sku > after_sku)
            .order_by(st.c.sku)
            .limit(limit)
        )
        if self._reader is not None:
            return [record_from_row(row) for row in self._reader.rows(stmt)]
        with self._engine.connect() as connection:
            return [record_from_row(row) for row in connection.execute(stmt)]
