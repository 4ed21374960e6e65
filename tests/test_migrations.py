"""Alembic migrations create exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.tables import Base
from sqlalchemy import inspect


def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_database_engine(database_url)
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrating_twice_is_harmless(database_url: str) -> None:
    engine = create_database_engine(database_url)
    migrate(engine)
    migrate(engine)
    assert {"locations", "stock", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()
