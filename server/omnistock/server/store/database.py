"""Engines, connection settings and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
# Alembic's own INFO lines ("Context impl SQLiteImpl.") say nothing an operator needs, and
# would break the CLI's one-line errors: only its warnings go through.
logging.getLogger("alembic").setLevel(logging.WARNING)

DEFAULT_DATABASE_URL = "sqlite:///omnistock.db"
MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and route them through psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_database_engine(
    url: str = DEFAULT_DATABASE_URL,
    *,
    pool_size: int = 8,
    statement_timeout: float = 30.0,
    application_name: str | None = None,
) -> Engine:
    """An engine tuned for omnistock: WAL and a busy timeout on SQLite; a sized pool and a
    per-statement timeout (``statement_timeout`` seconds) on PostgreSQL, its connections
    named ``application_name`` when given."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, Any] = {
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}"
        }
        if application_name:
            connect_args["application_name"] = application_name
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
    # busy timeout instead of failing to upgrade a read lock mid-transaction.
    connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.info.get("write") else "BEGIN")


# pg_advisory_xact_lock's key: any fixed number that no other lock of the database uses
# ("omnistck" in ASCII).
MIGRATION_LOCK = 0x6F6D6E6973746B


def alembic_config(stdout: TextIO | None = None) -> Config:
    config = Config(stdout=stdout or sys.stdout)
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest Alembic revision (idempotent).

    Safe to run from any number of processes at once: on PostgreSQL the upgrade holds an
    advisory lock for its transaction (DDL is transactional there), so the others wait,
    then find the schema current; on SQLite the transaction takes the write lock at BEGIN.
    """
    config = alembic_config()
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            # The wait for the lock and a long migration are not ordinary statements.
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("database schema is up to date")


def schema_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write. On SQLite it takes the write lock at BEGIN."""
    with engine.connect() as connection:
        connection.info["write"] = True
        try:
            with connection.begin():
                yield connection
        finally:
            connection.info["write"] = False


@contextmanager
def raw_write_transaction(engine: Engine) -> Iterator[Any]:
    """A DBAPI connection inside one write transaction, for the fast write paths (feeds,
    reservations) that skip SQLAlchemy's per-statement cost. On SQLite the write lock is
    taken at BEGIN (BEGIN IMMEDIATE)."""
    postgres = engine.dialect.name == "postgresql"
    pooled = engine.raw_connection()
    connection: Any = pooled.driver_connection
    try:
        if not postgres:
            connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.rollback() if postgres else connection.execute("ROLLBACK")
            raise
        if postgres:
            connection.commit()
        else:
            connection.execute("COMMIT")
    finally:
        pooled.close()
