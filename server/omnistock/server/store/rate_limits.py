"""Keys' token buckets in the database, shared by every process on it.

One row per key (rate_limit_buckets): refilled and taken from atomically. On PostgreSQL
one statement locks the row, refills it by the database's clock and takes the lease
(UPDATE ... RETURNING); on SQLite, whose writers queue on one lock, the same runs in one
BEGIN IMMEDIATE transaction, by the wall clock of the processes sharing the file. A key's
first use inserts its row, full.

The buckets have an engine of their own with a short statement timeout (PostgreSQL, where
its commits do not wait for the WAL flush: synchronous_commit off) or busy timeout (SQLite): a lease that cannot be had quickly fails, and the limiter falls back
to the process's own bucket (service.rate_limits) rather than hold the call.
"""

from __future__ import annotations

import time
from typing import Any

from omnistock.server.domain.rate_limits import Grant, refill_and_take
from omnistock.server.store.database import create_database_engine, raw_write_transaction
from sqlalchemy import event

_POSTGRES_TAKE = """
WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us),
cur AS (
    SELECT b.key_id,
           LEAST(%(burst)s, b.tokens + GREATEST(0, now.us - b.updated_at_us) * %(rate)s / 1e6)
               AS avail,
           GREATEST(now.us, b.updated_at_us) AS at
    FROM rate_limit_buckets b, now
    WHERE b.key_id = %(key)s
    FOR UPDATE OF b
)
UPDATE rate_limit_buckets b
SET tokens = cur.avail - LEAST(%(want)s, FLOOR(cur.avail)), updated_at_us = cur.at
FROM cur
WHERE b.key_id = cur.key_id
RETURNING LEAST(%(want)s, FLOOR(cur.avail))::bigint, b.tokens
"""
_POSTGRES_CREATE = """
INSERT INTO rate_limit_buckets (key_id, tokens, updated_at_us)
VALUES (%(key)s, %(burst)s, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
ON CONFLICT (key_id) DO NOTHING
"""


class DatabaseBuckets:
    """``take`` blocks: run it off the event loop (the limiter does)."""

    def __init__(self, database_url: str, *, timeout: float = 0.25) -> None:
        self.engine = create_database_engine(database_url, pool_size=2, statement_timeout=timeout)
        self._postgres = self.engine.dialect.name == "postgresql"
        if self._postgres:
            # A take need not wait for its WAL flush: a crash can forget the last takes,
            # which gives keys back a little of their burst, never more than it.
            def no_flush_wait(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("SET synchronous_commit = off")
                dbapi_connection.commit()

            event.listen(self.engine, "connect", no_flush_wait)
        else:
            busy = max(1, int(timeout * 1000))

            def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute(f"PRAGMA busy_timeout={busy}")

            event.listen(self.engine, "connect", short_busy_timeout)

    def take(self, key_id: str, rate: float, burst: int, want: int) -> Grant:
        """Refill the key's bucket and take up to ``want`` tokens from it, atomically."""
        if self._postgres:
            return self._take_postgres(key_id, float(rate), float(burst), want)
        return self._take_sqlite(key_id, rate, burst, want)

    def _take_postgres(self, key_id: str, rate: float, burst: float, want: int) -> Grant:
        values = {"key": key_id, "rate": rate, "burst": burst, "want": float(want)}
        with raw_write_transaction(self.engine) as connection:
            row = connection.execute(_POSTGRES_TAKE, values).fetchone()
            if row is None:  # the key's first use: its bucket starts full
                connection.execute(_POSTGRES_CREATE, values)
                row = connection.execute(_POSTGRES_TAKE, values).fetchone()
        granted, left = int(row[0]), float(row[1])
        return Grant(granted) if granted > 0 else Grant(0, (1.0 - left) / rate)

    def _take_sqlite(self, key_id: str, rate: float, burst: int, want: int) -> Grant:
        with raw_write_transaction(self.engine) as connection:
            now_us = time.time_ns() // 1000
            row = connection.execute(
                "SELECT tokens, updated_at_us FROM rate_limit_buckets WHERE key_id = ?",
                (key_id,),
            ).fetchone()
            tokens, at_us = (float(burst), now_us) if row is None else (row[0], row[1])
            grant, left = refill_and_take(tokens, (now_us - at_us) / 1e6, rate, burst, want)
            connection.execute(
                "INSERT INTO rate_limit_buckets (key_id, tokens, updated_at_us) VALUES (?, ?, ?)"
                " ON CONFLICT (key_id) DO UPDATE SET tokens = excluded.tokens,"
                " updated_at_us = excluded.updated_at_us",
                (key_id, left, max(now_us, at_us)),
            )
        return grant

    def close(self) -> None:
        self.engine.dispose()
