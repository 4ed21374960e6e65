"""Revision 0009 (idempotency keys per principal) keeps the reservations made before it."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from omnistock.server.store.database import MIGRATIONS, create_database_engine, migrate
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError


def test_upgrading_keeps_reservations_and_makes_their_keys_per_owner(database_url: str) -> None:
    engine = create_database_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
    row = (
        "INSERT INTO reservations (id, location_id, method, state, idempotency_key, fingerprint,"
        " customer_reference, created_at_us, expires_at_us, holds_stock)"
        " VALUES (:id, 'L1', 'PICKUP', 'ACTIVE', 'basket-0', 'f', '', 1, 2, TRUE)"
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO locations (id, kind, name, address, postal_code, country, latitude,"
                " longitude, time_zone, weekly_hours, hours_exceptions, pickup, ship_from,"
                " ship_to_store, pickup_lead_time_minutes, shipping_days, active, updated_at_us)"
                " VALUES ('L1', 'STORE', 'n', 'a', 'p', 'NL', 0, 0, 'UTC', '[]', '[]',"
                " TRUE, FALSE, FALSE, 0, 0, TRUE, 0)"
            )
        )
        connection.execute(text(row), {"id": "rsv_old"})
    migrate(engine)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT id, owner FROM reservations")).all() == [
            ("rsv_old", "")
        ]
        # The same key from another owner is another reservation.
        connection.execute(
            text(
                row.replace("holds_stock)", "holds_stock, owner)").replace("TRUE)", "TRUE, 'k2')")
            ),
            {"id": "rsv_new"},
        )
        assert connection.execute(text("SELECT count(*) FROM reservations")).scalar_one() == 2
    # The same key from the same owner is still refused by the schema.
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(row), {"id": "rsv_again"})
    engine.dispose()
