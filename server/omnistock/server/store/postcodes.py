"""Postal code centroids."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import postal_codes_table as t
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Engine, select


def normalize_postal_code(value: str) -> str:
    """ "1012 ab" and "1012AB" are the same code."""
    return "".join(value.split()).upper()


class PostcodeRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert_many(
        self, rows: Iterable[tuple[str, str, float, float]], *, batch_size: int = 5_000
    ) -> int:
        """Store (country, postal_code, latitude, longitude) rows; returns how many."""
        stmt = upsert_statement(
            self._engine, t, ["country", "postal_code"], update=["latitude", "longitude"]
        )
        count = 0
        iterator = iter(rows)
        while batch := list(islice(iterator, batch_size)):
            with write_transaction(self._engine) as connection:
                connection.execute(
                    stmt,
                    [
                        {
                            "country": country.upper(),
                            "postal_code": normalize_postal_code(code),
                            "latitude": lat,
                            "longitude": lon,
                        }
                        for country, code, lat, lon in batch
                    ],
                )
            count += len(batch)
        return count

    def lookup(self, postal_code: str, country: str = "") -> tuple[float, float] | None:
        stmt = select(t.c.latitude, t.c.longitude).where(
            t.c.postal_code == normalize_postal_code(postal_code)
        )
        if country:
            stmt = stmt.where(t.c.country == country.upper())
        with self._engine.connect() as connection:
            row = connection.execute(stmt.order_by(t.c.country).limit(1)).first()
        return None if row is None else (float(row[0]), float(row[1]))
