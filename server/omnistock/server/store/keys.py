"""API keys and the audit log, through SQLAlchemy Core (neither is on a hot path: keys are
cached by the authenticator, audit rows are written in batches by service/audit.py's
thread)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from omnistock.server.domain.security import (
    AuditEntry,
    Principal,
    Role,
    StoredKey,
    check_rate_limit,
    hash_secret,
    new_key,
)
from omnistock.server.domain.stock import Exposure
from omnistock.server.domain.timeutil import from_micros, to_micros
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import ApiKeyRow, AuditRow
from sqlalchemy import Engine, Table, insert, select, update

keys: Table = ApiKeyRow.__table__  # type: ignore[assignment]
audit: Table = AuditRow.__table__  # type: ignore[assignment]


class KeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        name: str,
        roles: Sequence[Role],
        *,
        locations: Sequence[str] | None,
        exposure: Exposure,
        rate_per_second: float,
        burst: int,
        now: datetime,
        channels: Sequence[str] | None = None,
    ) -> tuple[StoredKey, str]:
        """A new key; returns it and the key text, which is shown once and never stored.
        Limits no token bucket can keep (a rate of 0, NaN, an empty burst) are
        InvalidArgument: the CLI checks them, and so does every other way in."""
        check_rate_limit(rate_per_second, burst)
        key_id, secret, text = new_key()
        with write_transaction(self._engine) as connection:
            connection.execute(
                insert(keys).values(
                    id=key_id,
                    name=name,
                    secret_hash=hash_secret(secret),
                    roles=sorted(role.value for role in roles),
                    locations=None if locations is None else sorted(set(locations)),
                    channels=None if channels is None else sorted(set(channels)),
                    exposure=exposure.name,
                    rate_per_second=rate_per_second,
                    burst=burst,
                    created_at_us=to_micros(now),
                    revoked_at_us=None,
                )
            )
        stored = self.get(key_id)
        assert stored is not None
        return stored, text

    def get(self, key_id: str) -> StoredKey | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(keys).where(keys.c.id == key_id)).first()
        return None if row is None else _stored(row)

    def all(self) -> list[StoredKey]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(keys).order_by(keys.c.created_at_us)).all()
        return [_stored(row) for row in rows]

    def revoke(self, key_id: str, *, now: datetime) -> bool:
        with write_transaction(self._engine) as connection:
            result = connection.execute(
                update(keys)
                .where(keys.c.id == key_id, keys.c.revoked_at_us.is_(None))
                .values(revoked_at_us=to_micros(now))
            )
        return result.rowcount == 1


def _stored(row: object) -> StoredKey:
    r = row._mapping  # type: ignore[attr-defined]
    return StoredKey(
        Principal(
            key_id=r["id"],
            name=r["name"],
            roles=frozenset(Role(v) for v in r["roles"]),
            locations=None if r["locations"] is None else frozenset(r["locations"]),
            exposure=Exposure[r["exposure"]],
            rate_per_second=r["rate_per_second"],
            burst=r["burst"],
            channels=None if r["channels"] is None else frozenset(r["channels"]),
        ),
        r["secret_hash"],
        from_micros(r["created_at_us"]),
        None if r["revoked_at_us"] is None else from_micros(r["revoked_at_us"]),
    )


def _plain(value: object) -> object:
    """A detail value json cannot take as it is: sets as sorted lists, anything else as text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def detail_json(detail: dict[str, object]) -> str:
    """An entry's detail as stored; never fails, whatever a servicer noted."""
    return json.dumps(detail, sort_keys=True, default=_plain)


class AuditRepository:
    """The audit table: entries written in batches, and the latest read back."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, batch: Sequence[AuditEntry]) -> None:
        with write_transaction(self._engine) as connection:
            connection.execute(
                insert(audit),
                [
                    {
                        "at_us": to_micros(e.at),
                        "principal": e.principal,
                        "key_id": e.key_id,
                        "method": e.method,
                        "detail": detail_json(e.detail),
                    }
                    for e in batch
                ],
            )

    def recent(self, limit: int = 50) -> list[AuditEntry]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(audit).order_by(audit.c.id.desc()).limit(limit)).all()
        return [
            AuditEntry(from_micros(r.at_us), r.principal, r.key_id, r.method, json.loads(r.detail))
            for r in reversed(rows)
        ]
