"""The location repository."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from omnistock.server.domain.locations import (
    Capabilities,
    HoursException,
    Location,
    LocationKind,
    WeeklyHours,
)
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import locations_table as t
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Row


class LocationRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert_many(self, locations: Sequence[Location], *, now: datetime) -> None:
        """Create or replace the given locations in one transaction."""
        if not locations:
            return
        rows = [_to_row(location, now) for location in locations]
        stmt = upsert_statement(
            self._engine, t, ["id"], update=[c.name for c in t.columns if c.name != "id"]
        )
        with write_transaction(self._engine) as connection:
            connection.execute(stmt, rows)

    def get_all(self) -> list[Location]:
        with self._engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(select(t).order_by(t.c.id))]

    def get_page(
        self,
        *,
        after_id: str,
        limit: int,
        kind: LocationKind | None = None,
        ids: Collection[str] | None = None,
    ) -> list[Location]:
        """Locations after ``after_id`` in id order; of ``ids`` only, when given."""
        stmt = select(t).where(t.c.id > after_id).order_by(t.c.id).limit(limit)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind.value)
        if ids is not None:
            stmt = stmt.where(t.c.id.in_(sorted(ids)))
        with self._engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(stmt)]

    def version(self) -> tuple[int, int]:
        """(count, newest update time): changes whenever a location is created or replaced."""
        stmt = select(func.count(), func.coalesce(func.max(t.c.updated_at_us), 0))
        with self._engine.connect() as connection:
            count, newest = connection.execute(stmt).one()
        return int(count), int(newest)

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(t)).scalar_one())


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _to_row(location: Location, now: datetime) -> dict[str, Any]:
    return {
        "id": location.id,
        "kind": location.kind.value,
        "name": location.name,
        "address": location.address,
        "postal_code": location.postal_code,
        "country": location.country,
        "latitude": location.latitude,
        "longitude": location.longitude,
        "time_zone": location.time_zone,
        "weekly_hours": [
            {"weekday": h.weekday, "opens": _hhmm(h.opens), "closes": _hhmm(h.closes)}
            for h in location.weekly_hours
        ],
        "hours_exceptions": [
            {
                "date": e.date.isoformat(),
                "opens": None if e.opens is None else _hhmm(e.opens),
                "closes": None if e.closes is None else _hhmm(e.closes),
            }
            for e in location.hours_exceptions
        ],
        "pickup": location.capabilities.pickup,
        "ship_from": location.capabilities.ship_from,
        "ship_to_store": location.capabilities.ship_to_store,
        "pickup_lead_time_minutes": location.pickup_lead_time_minutes,
        "shipping_days": location.shipping_days,
        "active": location.active,
        "default_safety_stock": location.default_safety_stock,
        "freshness_budget_seconds": (
            None
            if location.freshness_budget is None
            else int(location.freshness_budget.total_seconds())
        ),
        "updated_at_us": to_micros(now),
    }


def _from_row(row: Row[Any]) -> Location:
    m = row._mapping
    return Location(
        id=m["id"],
        kind=LocationKind(m["kind"]),
        name=m["name"],
        address=m["address"],
        postal_code=m["postal_code"],
        country=m["country"],
        latitude=m["latitude"],
        longitude=m["longitude"],
        time_zone=m["time_zone"],
        weekly_hours=tuple(
            WeeklyHours(
                h["weekday"], time.fromisoformat(h["opens"]), time.fromisoformat(h["closes"])
            )
            for h in m["weekly_hours"]
        ),
        hours_exceptions=tuple(
            HoursException(
                date.fromisoformat(e["date"]),
                None if e["opens"] is None else time.fromisoformat(e["opens"]),
                None if e["closes"] is None else time.fromisoformat(e["closes"]),
            )
            for e in m["hours_exceptions"]
        ),
        capabilities=Capabilities(m["pickup"], m["ship_from"], m["ship_to_store"]),
        pickup_lead_time_minutes=m["pickup_lead_time_minutes"],
        shipping_days=m["shipping_days"],
        active=m["active"],
        default_safety_stock=m["default_safety_stock"],
        freshness_budget=(
            None
            if m["freshness_budget_seconds"] is None
            else timedelta(seconds=m["freshness_budget_seconds"])
        ),
    )
