"""The stock repository: point reads for availability, ordered upserts for feeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from omnistock.server.domain.stock import StockRecord
from omnistock.server.store.database import write_transaction
from omnistock.server.store.reads import StockReader
from omnistock.server.store.tables import stock_table as t
from omnistock.server.store.timeutil import to_micros
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Engine, and_, func, or_, select


@dataclass(frozen=True, slots=True)
class AbsoluteUpdate:
    """An absolute quantity for one record, as a feed reported it."""

    location_id: str
    sku: str
    on_hand: int
    source_updated_at: datetime
    safety_stock: int | None = None
    source_sequence: int | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int
    stale: int


def _is_newer(excluded: Any) -> Any:
    """The feed ordering rule, in SQL: by sequence when both sides have one, else by time.

    Equal keys are not newer, so an exact replay changes nothing.
    """
    both_sequenced = and_(excluded.source_sequence.is_not(None), t.c.source_sequence.is_not(None))
    return or_(
        and_(both_sequenced, excluded.source_sequence > t.c.source_sequence),
        and_(~both_sequenced, excluded.source_updated_at_us > t.c.source_updated_at_us),
    )


class StockRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader = StockReader(engine)
        self._apply = upsert_statement(
            engine,
            t,
            ["sku", "location_id"],
            update=["on_hand", "source_updated_at_us", "source_sequence", "received_at_us"],
            set_=lambda excluded: {
                "safety_stock": func.coalesce(excluded.safety_stock, t.c.safety_stock)
            },
            where=_is_newer,
        ).returning(t.c.sku)

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

    def existing_skus(self, skus: Iterable[str]) -> set[str]:
        """The skus, of those given, that some location has reported."""
        skus = list(set(skus))
        if not skus:
            return set()
        stmt = select(t.c.sku).where(t.c.sku.in_(skus)).distinct()
        with self._engine.connect() as connection:
            return set(connection.scalars(stmt))

    def close(self) -> None:
        self._reader.close()

    def apply_absolute(self, updates: Sequence[AbsoluteUpdate], *, now: datetime) -> ApplyResult:
        """Upsert absolute quantities in one transaction, skipping stale ones.

        An update applies when it is newer than the stored record (see _is_newer),
        or when there is no record yet.
        """
        if not updates:
            return ApplyResult(0, 0)
        received = to_micros(now)
        rows = [
            {
                "sku": u.sku,
                "location_id": u.location_id,
                "on_hand": u.on_hand,
                "reserved": 0,
                "safety_stock": u.safety_stock,
                "source_updated_at_us": to_micros(u.source_updated_at),
                "source_sequence": u.source_sequence,
                "received_at_us": received,
            }
            for u in updates
        ]
        applied = 0
        with write_transaction(self._engine) as connection:
            # One statement per row keeps RETURNING exact when a batch names a
            # record twice; the statement is compiled once and cached.
            for row in rows:
                applied += len(connection.execute(self._apply, row).all())
        return ApplyResult(applied, len(rows) - applied)

    def insert_new(
        self, updates: Iterable[AbsoluteUpdate], *, now: datetime, batch_size: int = 10_000
    ) -> int:
        """Bulk-insert records that do not exist yet (initial loads), in one transaction."""
        received = to_micros(now)
        stmt = t.insert()
        count = 0
        with write_transaction(self._engine) as connection:
            batch: list[dict[str, Any]] = []
            for u in updates:
                batch.append(
                    {
                        "sku": u.sku,
                        "location_id": u.location_id,
                        "on_hand": u.on_hand,
                        "reserved": 0,
                        "safety_stock": u.safety_stock,
                        "source_updated_at_us": to_micros(u.source_updated_at),
                        "source_sequence": u.source_sequence,
                        "received_at_us": received,
                    }
                )
                if len(batch) >= batch_size:
                    connection.execute(stmt, batch)
                    count += len(batch)
                    batch = []
            if batch:
                connection.execute(stmt, batch)
                count += len(batch)
        return count


__all__ = ["AbsoluteUpdate", "ApplyResult", "StockRepository"]
