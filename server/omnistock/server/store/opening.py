"""Opening a database from a URL an operator typed: every mistake becomes one line that
names the value and the fix (:class:`DatabaseSetupError`), never a driver traceback."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnistock.server.store.database import create_database_engine, normalize_url
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

REPLICA_FLAG = "--read-database-url"
EXAMPLES = "sqlite:///omnistock.db or postgresql://USER@HOST:5432/DATABASE"


class DatabaseSetupError(Exception):
    """A database that cannot be used. ``usage`` is true when the URL itself is wrong
    (the command exits 2), false when the database could not be reached or is not ready
    (exit 1)."""

    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        self.usage = usage


def check_database_url(url: str, flag: str = "--database-url") -> URL:
    """The parsed URL, or DatabaseSetupError(usage=True) saying what a valid one looks like.

    >>> check_database_url("postgresql://app@db/omnistock").drivername
    'postgresql+psycopg'
    """
    try:
        parsed = make_url(normalize_url(url))
    except (ArgumentError, ValueError):
        hint = f" (for a file: sqlite:///{url})" if url.endswith(".db") else ""
        raise DatabaseSetupError(
            f"{flag} {url!r} is not a database URL: use {EXAMPLES}{hint}", usage=True
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseSetupError(
            f"{flag} {_shown(url)!r}: {backend} is not supported: use {EXAMPLES}",
            usage=True,
        )
    if backend == "postgresql" and not parsed.database:
        raise DatabaseSetupError(
            f"{flag} {_shown(url)!r} names no database: use {EXAMPLES}", usage=True
        )
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The file of an SQLite URL (None for memory and PostgreSQL)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def open_database(
    url: str, *, must_exist: bool = False, pool_size: int = 8, statement_timeout: float = 30.0
) -> Engine:
    """An engine on ``url`` that has been connected to once, so a wrong host, port, user,
    database or folder is found here. ``must_exist``: a read-only command's database, which
    must already hold omnistock's schema (nothing is created)."""
    parsed = check_database_url(url)
    path = sqlite_file(parsed)
    if path is not None and not path.parent.is_dir():
        raise DatabaseSetupError(
            f"--database-url {_shown(url)!r}: the folder {str(path.parent)!r} does not exist:"
            " create it, or name a file in a folder that does",
            usage=False,
        )
    if must_exist and path is not None and not path.is_file():
        raise DatabaseSetupError(
            f"no database at {str(path)!r}: give the server's --database-url (or set"
            " OMNISTOCK_DATABASE_URL), or create one with `omnistock migrate`",
            usage=False,
        )
    engine = create_database_engine(url, pool_size=pool_size, statement_timeout=statement_timeout)
    try:
        with engine.connect() as connection:
            if must_exist and not inspect(connection).has_table("alembic_version"):
                raise DatabaseSetupError(
                    f"{_shown(url)!r} holds no omnistock schema: give the server's"
                    " --database-url, or run `omnistock migrate` first",
                    usage=False,
                )
    except DatabaseSetupError:
        engine.dispose()
        raise
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseSetupError(explain_connection_error(url, error), usage=False) from None
    return engine


def open_read_replicas(
    primary_url: str, urls: Sequence[str], *, pool_size: int = 8, statement_timeout: float = 30.0
) -> list[Engine]:
    """Engines on the ``--read-database-url`` streaming replicas of the PostgreSQL primary
    at ``primary_url``, each connected to once and found in recovery (a standby)."""
    if not urls:
        return []
    if check_database_url(primary_url).get_backend_name() != "postgresql":
        raise DatabaseSetupError(
            "--read-database-url needs a PostgreSQL --database-url (read replicas are"
            " PostgreSQL streaming replicas): remove it, or serve from PostgreSQL",
            usage=True,
        )
    for url in urls:
        if check_database_url(url, REPLICA_FLAG).get_backend_name() != "postgresql":
            raise DatabaseSetupError(
                f"{REPLICA_FLAG} {_shown(url)!r}: a read replica must be a PostgreSQL"
                f" streaming replica: use postgresql://USER@HOST:5432/DATABASE",
                usage=True,
            )
    engines: list[Engine] = []
    try:
        for url in urls:
            engine = create_database_engine(
                url,
                pool_size=pool_size,
                statement_timeout=statement_timeout,
                application_name=f"omnistock-read-{os.getpid()}",
            )
            engines.append(engine)
            try:
                with engine.connect() as connection:
                    standby = connection.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()
            except SQLAlchemyError as error:
                message = explain_connection_error(url, error).replace(
                    "cannot open database", "cannot open read replica", 1
                )
                raise DatabaseSetupError(message, usage=False) from None
            if not standby:
                raise DatabaseSetupError(
                    f"{REPLICA_FLAG} {_shown(url)!r} is not a streaming replica"
                    " (pg_is_in_recovery() is false): give a standby's URL",
                    usage=True,
                )
    except DatabaseSetupError:
        for engine in engines:
            engine.dispose()
        raise
    return engines


def explain_connection_error(url: str, error: SQLAlchemyError) -> str:
    """One line: what the driver said (its first line) and the likely fix."""
    original: Any = error.orig if isinstance(error, DBAPIError) else error
    said = " ".join(str(original).split("\n")[0].split())
    said = said.removeprefix("connection failed: ")
    lowered = said.lower()
    if "connection refused" in lowered or "could not translate host" in lowered:
        fix = "is PostgreSQL running there, and are the host and port right?"
    elif "database" in lowered and "does not exist" in lowered:
        fix = (
            f"create it (createdb {make_url(normalize_url(url)).database}) or name another database"
        )
    elif "role" in lowered or "authentication failed" in lowered or "password" in lowered:
        fix = "check the user and password in the URL"
    elif "unable to open database file" in lowered:
        fix = "check that the file's folder exists and is writable"
    else:
        fix = "check the URL and that the database is up"
    return f"cannot open database {_shown(url)!r}: {said}: {fix}"


def _shown(url: str) -> str:
    """The URL as given, its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url
