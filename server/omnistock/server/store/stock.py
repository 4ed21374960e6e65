"""The stock repository: reads for availability. Feed writes are in store/feeds.py (deltas) and store/snapshots.py."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from omnistock.server.domain.stock import StockRecord
from omnistock.server.store.reads import StockReader
from omnistock.server.store.tables import stock_table as t
from sqlalchemy import Engine, select


class StockRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader = StockReader(engine)

    def records_for_sku(self, sku: str, location_ids: Sequence[str] | None) -> list[StockRecord]:
        """The records of one sku at the given locations (all when None)."""
        return self._reader.records_for_sku(sku, location_ids)

    def records_for_pairs(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], StockRecord]:
        """Records keyed by (sku, location_id), for those pairs that have one."""
        unique = list(dict.fromkeys(pairs))
        if not unique:
            return {}
        return {(r.sku, r.location_id): r for r in self._reader.records_for_pairs(unique)}

    def existing_skus(
        self, skus: Iterable[str], locations: Collection[str] | None = None
    ) -> set[str]:
        """The skus, of those given, that some location (of ``locations``, when given)
        has reported."""
        skus = list(set(skus))
        if not skus or (locations is not None and not locations):
            return set()
        stmt = select(t.c.sku).where(t.c.sku.in_(skus)).distinct()
        if locations is not None:
            stmt = stmt.where(t.c.location_id.in_(sorted(locations)))
        with self._engine.connect() as connection:
            return set(connection.scalars(stmt))

    def close(self) -> None:
        self._reader.close()
