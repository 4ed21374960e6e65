"""Purging what is kept only for a while: audit log entries, and reservations that have
finished (released, expired, or committed and fulfilled; none that still holds stock).

Deletes go in batches of ``batch`` rows, each its own short transaction, so a purge never
holds SQLite's write lock or a PostgreSQL transaction for long; several processes purging
at once only share the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import (
    AuditRow,
    ReservationRow,
    reservation_lines_table,
    reservations_table,
)
from sqlalchemy import Engine, and_, delete, select

PURGE_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Purged:
    audit_entries: int = 0
    reservations: int = 0


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def purge_audit_log(engine: Engine, before: datetime, *, batch: int = PURGE_BATCH) -> int:
    """Delete audit entries written before ``before``; the number deleted."""
    total = 0
    while True:
        with write_transaction(engine) as connection:
            ids = select(AuditRow.id).where(AuditRow.at_us < _micros(before)).limit(batch)
            deleted = connection.execute(delete(AuditRow).where(AuditRow.id.in_(ids))).rowcount
        total += deleted
        if deleted < batch:
            return total


def purge_finished_reservations(
    engine: Engine, before: datetime, *, batch: int = PURGE_BATCH
) -> int:
    """Delete reservations (and their lines) that ended before ``before`` and hold no stock;
    the number deleted."""
    finished = and_(
        ReservationRow.state != "ACTIVE",
        ReservationRow.holds_stock.is_(False),
        ReservationRow.ended_at_us < _micros(before),
    )
    total = 0
    while True:
        with write_transaction(engine) as connection:
            ids = list(connection.scalars(select(ReservationRow.id).where(finished).limit(batch)))
            if ids:
                lines = reservation_lines_table
                connection.execute(delete(lines).where(lines.c.reservation_id.in_(ids)))
                connection.execute(
                    delete(reservations_table).where(reservations_table.c.id.in_(ids))
                )
        total += len(ids)
        if len(ids) < batch:
            return total


def purge(
    engine: Engine,
    *,
    audit_before: datetime | None,
    reservations_before: datetime | None,
    batch: int = PURGE_BATCH,
) -> Purged:
    """Both purges; None keeps that kind for ever."""
    return Purged(
        audit_entries=0
        if audit_before is None
        else purge_audit_log(engine, audit_before, batch=batch),
        reservations=0
        if reservations_before is None
        else purge_finished_reservations(engine, reservations_before, batch=batch),
    )
