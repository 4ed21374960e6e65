"""Quantities stay within their documented range, on both databases (DESIGN.md "Range").

on_hand within +-10^12 and safety stock within [0, 10^12] after every adjustment; an
adjustment that would leave the range is rejected for that record and the rest of its
batch applies; the schema refuses anything else, and a database poisoned before the
schema did is repaired by its migration so that no read fails.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from conftest import NOW
from factories import store, ts
from omnistock.client import Client, DeltaRecord, Exposure, StockStatus
from omnistock.server.domain.feed_order import MAX_QUANTITY, pack_key
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.database import MIGRATIONS, create_database_engine, migrate
from omnistock.server.store.reads import StockReader
from sqlalchemy import Engine, text

KEY = pack_key(0, -1, 1, -1)


def adjust(sku: str, by: int, at_minutes: int = 0) -> DeltaRecord:
    return DeltaRecord(
        location_id="NL-AMS-01",
        sku=sku,
        adjustment=by,
        source_updated_at=ts(NOW.replace(minute=at_minutes)),
    )


def exact(client: Client, *skus: str) -> list[int]:
    answers = client.batch_get_availability(
        [(sku, "NL-AMS-01") for sku in skus], exposure=Exposure.EXACT
    )
    return [a.on_hand for a in answers]


def test_an_adjustment_that_would_leave_the_range_is_rejected_and_the_batch_goes_on(
    client: Client,
) -> None:
    client.upsert_locations([store("NL-AMS-01")])
    [first] = client.stream_deltas([[adjust("A", -MAX_QUANTITY, 1)]])
    assert first.applied_count == 1
    [ack] = client.stream_deltas(
        [[adjust("A", -MAX_QUANTITY, 2), adjust("B", 5, 2), adjust("A", MAX_QUANTITY, 3)]]
    )
    assert (ack.applied_count, ack.stale_count, ack.rejected_count) == (2, 0, 1)
    [reject] = ack.rejects
    assert (reject.index, reject.field, reject.reason) == (0, "adjustment", "QUANTITY_OUT_OF_RANGE")
    # -10^12 + 10^12: the later adjustment applied on the value the rejected one left alone.
    assert exact(client, "A", "B") == [0, 5]
    # The whole location still answers.
    assert [a.status for a in client.get_availability("B", ["NL-AMS-01"])] == [StockStatus.IN_STOCK]
    status = client.get_feed_status("NL-AMS-01")
    assert status.rejected_count == 1


def insert(engine: Engine, on_hand: object, safety: object = None, reserved: object = 0) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO stock (sku, location_id, on_hand, reserved, safety_stock,"
                " received_at_us, source_updated_at_us, on_hand_key)"
                " VALUES ('X', 'L1', :on_hand, :reserved, :safety, 0, 0, :key)"
            ),
            {"on_hand": on_hand, "safety": safety, "reserved": reserved, "key": KEY},
        )


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = create_database_engine(database_url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO locations (id, kind, name, address, postal_code, country, latitude,"
                " longitude, time_zone, weekly_hours, hours_exceptions, pickup, ship_from,"
                " ship_to_store, pickup_lead_time_minutes, shipping_days, active, updated_at_us)"
                " VALUES ('L1', 'STORE', 'L1', '', '', '', 0, 0, 'UTC', '[]', '[]', false, false,"
                " false, 0, 0, true, 0)"
            )
        )
    return engine


@pytest.mark.parametrize(
    ("on_hand", "safety", "reserved"),
    [
        (MAX_QUANTITY + 1, None, 0),
        (-MAX_QUANTITY - 1, None, 0),
        (2**62, None, 0),
        (1, -1, 0),
        (1, MAX_QUANTITY + 1, 0),
        (1, None, -1),
        (1, None, MAX_QUANTITY + 1),
    ],
)
def test_the_schema_refuses_quantities_outside_their_range(
    engine: Engine, on_hand: int, safety: int | None, reserved: int
) -> None:
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        insert(engine, on_hand, safety, reserved)


def test_no_quantity_is_stored_that_is_not_a_whole_number(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        # SQLite would keep a float in an integer column (an overflow makes one): refused.
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            insert(engine, 2.5)
        return
    # PostgreSQL's bigint holds whole numbers only: the value is cast on the way in.
    insert(engine, 2.5)
    with engine.connect() as connection:
        (stored,) = connection.execute(text("SELECT on_hand FROM stock")).one()
    assert isinstance(stored, int)


def migrate_to(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_migration_repairs_poisoned_records_so_every_read_answers(database_url: str) -> None:
    engine = create_database_engine(database_url)
    migrate_to(engine, "0007")
    source_us = to_micros(NOW)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO locations (id, kind, name, address, postal_code, country, latitude,"
                " longitude, time_zone, weekly_hours, hours_exceptions, pickup, ship_from,"
                " ship_to_store, pickup_lead_time_minutes, shipping_days, active, updated_at_us)"
                " VALUES ('L1', 'STORE', 'L1', '', '', '', 0, 0, 'UTC', '[]', '[]', false, false,"
                " false, 0, 0, true, 0)"
            )
        )
        rows = [("GOOD", 7, 2), ("LOW", -2 * MAX_QUANTITY, None)]
        if engine.dialect.name == "sqlite":
            # What an overflow left on SQLite before the schema refused it: a float.
            rows.append(("FLOAT", 9.2e18, None))
        for sku, on_hand, safety in rows:
            connection.execute(
                text(
                    "INSERT INTO stock (sku, location_id, on_hand, reserved, safety_stock,"
                    " source_updated_at_us, source_sequence, received_at_us)"
                    " VALUES (:sku, 'L1', :on_hand, 0, :safety, :at, 3, :at)"
                ),
                {"sku": sku, "on_hand": on_hand, "safety": safety, "at": source_us},
            )
    migrate(engine)
    with engine.connect() as connection:
        stored = {
            row[0]: tuple(row[1:])
            for row in connection.execute(
                text(
                    "SELECT sku, on_hand, safety_stock, source_updated_at_us, source_sequence,"
                    " safety_key FROM stock"
                )
            )
        }
    good_key = pack_key(source_us, 3, 2 * 7 + 1, 2)
    assert stored["GOOD"][:4] == (7, 2, source_us, 3)
    assert bytes(stored["GOOD"][4]) == good_key
    # Brought into range and dated the epoch: it reads UNKNOWN until its feed sends it again.
    assert stored["LOW"] == (-MAX_QUANTITY, None, 0, 3, None)
    if engine.dialect.name == "sqlite":
        assert stored["FLOAT"] == (MAX_QUANTITY, None, 0, 3, None)
        assert all(isinstance(value[0], int) for value in stored.values())
    records = StockReader(engine).records_for_sku("LOW", ["L1"])
    assert [r.on_hand for r in records] == [-MAX_QUANTITY]
    engine.dispose()


def test_sqlite_keeps_no_float_after_an_overflowing_write(tmp_path: object) -> None:
    # The raw sqlite3 module, as the feed path uses it: the CHECK stops the overflow.
    engine = create_database_engine(f"sqlite:///{tmp_path}/x.db")
    migrate(engine)
    engine.dispose()
    connection = sqlite3.connect(f"{tmp_path}/x.db")
    connection.execute(
        "INSERT INTO locations (id, kind, name, address, postal_code, country, latitude,"
        " longitude, time_zone, weekly_hours, hours_exceptions, pickup, ship_from,"
        " ship_to_store, pickup_lead_time_minutes, shipping_days, active, updated_at_us)"
        " VALUES ('L1', 'STORE', 'L1', '', '', '', 0, 0, 'UTC', '[]', '[]', 0, 0, 0, 0, 0, 1, 0)"
    )
    connection.execute(
        "INSERT INTO stock (sku, location_id, on_hand, reserved, safety_stock, received_at_us,"
        " source_updated_at_us, on_hand_key)"
        f" VALUES ('X', 'L1', {MAX_QUANTITY}, 0, NULL, 0, 0, ?)",
        (KEY,),
    )
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("UPDATE stock SET on_hand = on_hand * 9223372036")
    assert connection.execute("SELECT typeof(on_hand), on_hand FROM stock").fetchone() == (
        "integer",
        MAX_QUANTITY,
    )
