"""The stock repository: reads for availability. Feed writes are in store/feeds.py (deltas) and store/snapshots.py."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from omnistock.server.domain.stock import StockRecord
from omnistock.server.store.reads import StockReader
from omnistock.server.store.replicas import ReplicaSet
from omnistock.server.store.tables import stock_table as t
from sqlalchemy import Engine, select


class StockRepository:
    """Reads go where ``replicas`` picks (store/replicas.py); ``on_primary()`` gives the
    same reads always from the primary, for paths that must see their own writes."""

    def __init__(
        self,
        engine: Engine,
        *,
        replicas: ReplicaSet | None = None,
        reader: StockReader | None = None,
        primary: bool = False,
    ) -> None:
        self._engine = engine
        self._reader = reader or StockReader(engine, replicas=replicas)
        self._primary = primary

    def on_primary(self) -> StockRepository:
        """These reads from the primary only (sharing this one's connections)."""
        return StockRepository(self._engine, reader=self._reader, primary=True)

    def records_for_sku(self, sku: str, location_ids: Sequence[str] | None) -> list[StockRecord]:
        """The records of one sku at the given locations (all when None)."""
        return self._reader.records_for_sku(sku, location_ids, primary=self._primary)

    def records_for_pairs(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], StockRecord]:
        """Records keyed by (sku, location_id), for those pairs that have one."""
        unique = list(dict.fromkeys(pairs))
        if not unique:
            return {}
        records = self._reader.records_for_pairs(unique, primary=self._primary)
        return {(r.sku, r.location_id): r for r in records}

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
        return {row[0] for row in self._reader.rows(stmt, primary=self._primary)}

    @property
    def reader(self) -> StockReader:
        return self._reader

    def close(self) -> None:
        self._reader.close()
