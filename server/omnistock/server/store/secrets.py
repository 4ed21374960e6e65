"""Secrets shared by every process on one database, made on first use."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import ServerSecretRow
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

_secrets: Table = ServerSecretRow.__table__  # type: ignore[assignment]


def shared_secret(engine: Engine, name: str) -> bytes:
    """The database's secret called ``name``: 32 random bytes, made by whichever process
    asks first (a process that loses the race to make it reads the winner's)."""
    found = _read(engine, name)
    if found is not None:
        return found
    try:
        with write_transaction(engine) as connection:
            connection.execute(
                insert(_secrets).values(
                    name=name,
                    value=secrets.token_hex(32),
                    created_at_us=to_micros(datetime.now(UTC)),
                )
            )
    except IntegrityError:
        pass  # another process made it first
    found = _read(engine, name)
    assert found is not None
    return found


def _read(engine: Engine, name: str) -> bytes | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(_secrets.c.value).where(_secrets.c.name == name)
        ).scalar_one_or_none()
    return None if value is None else bytes.fromhex(value)
