"""Location groups and channels: the channel repository."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from omnistock.server.domain.channels import Channel, LocationGroup
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import channel_protection_table as cp
from omnistock.server.store.tables import channels_table as ct
from omnistock.server.store.tables import location_group_members_table as mt
from omnistock.server.store.tables import location_groups_table as gt
from omnistock.server.store.upsert import upsert_statement
from sqlalchemy import Connection, Engine, Select, delete, insert, select


class ChannelRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- location groups

    def upsert_groups(self, groups: Sequence[LocationGroup], *, now: datetime) -> None:
        """Create or replace groups, members included, in one transaction."""
        if not groups:
            return
        at = to_micros(now)
        with write_transaction(self._engine) as connection:
            connection.execute(
                upsert_statement(self._engine, gt, ["id"], update=["name", "updated_at_us"]),
                [{"id": g.id, "name": g.name, "updated_at_us": at} for g in groups],
            )
            ids = [g.id for g in groups]
            connection.execute(delete(mt).where(mt.c.group_id.in_(ids)))
            members = [
                {"group_id": g.id, "location_id": location_id}
                for g in groups
                for location_id in sorted(g.location_ids)
            ]
            if members:
                connection.execute(insert(mt), members)

    def change_members(
        self, group_id: str, *, add: Collection[str], remove: Collection[str], now: datetime
    ) -> LocationGroup | None:
        """Add and remove members of one group; the group as it is then (None: no group)."""
        with write_transaction(self._engine) as connection:
            found = _groups(connection, [group_id])
            if group_id not in found:
                return None
            members = (found[group_id].location_ids | set(add)) - set(remove)
            connection.execute(delete(mt).where(mt.c.group_id == group_id))
            if members:
                connection.execute(
                    insert(mt),
                    [{"group_id": group_id, "location_id": m} for m in sorted(members)],
                )
            connection.execute(
                gt.update().where(gt.c.id == group_id).values(updated_at_us=to_micros(now))
            )
            return LocationGroup(group_id, found[group_id].name, frozenset(members))

    def groups(self, ids: Collection[str]) -> dict[str, LocationGroup]:
        with self._engine.connect() as connection:
            return _groups(connection, ids)

    def group_page(self, *, after_id: str, limit: int) -> list[LocationGroup]:
        """Groups after ``after_id`` in id order."""
        stmt = select(gt.c.id).where(gt.c.id > after_id).order_by(gt.c.id).limit(limit)
        with self._engine.connect() as connection:
            ids = list(connection.execute(stmt).scalars())
            found = _groups(connection, ids)
        return [found[i] for i in ids]

    # -- channels

    def upsert_channels(self, channels: Sequence[Channel], *, now: datetime) -> None:
        """Create or replace channels, protections included, in one transaction."""
        if not channels:
            return
        at = to_micros(now)
        columns = ["name", "group_id", "default_protection", "sells_incoming", "low_threshold"]
        with write_transaction(self._engine) as connection:
            connection.execute(
                upsert_statement(self._engine, ct, ["id"], update=[*columns, "updated_at_us"]),
                [
                    {
                        "id": c.id,
                        "name": c.name,
                        "group_id": c.group_id,
                        "default_protection": c.default_protection,
                        "sells_incoming": c.sells_incoming,
                        "low_threshold": c.low_threshold,
                        "updated_at_us": at,
                    }
                    for c in channels
                ],
            )
            ids = [c.id for c in channels]
            connection.execute(delete(cp).where(cp.c.channel_id.in_(ids)))
            rows = [
                {"channel_id": c.id, "location_id": location_id, "units": units}
                for c in channels
                for location_id, units in sorted(c.protection.items())
            ]
            if rows:
                connection.execute(insert(cp), rows)

    def channels(self, ids: Collection[str]) -> dict[str, Channel]:
        with self._engine.connect() as connection:
            return _channels(connection, select(ct).where(ct.c.id.in_(sorted(ids))))

    def channel_page(self, *, after_id: str, limit: int) -> list[Channel]:
        """Channels after ``after_id`` in id order."""
        stmt = select(ct).where(ct.c.id > after_id).order_by(ct.c.id).limit(limit)
        with self._engine.connect() as connection:
            return list(_channels(connection, stmt).values())


def _groups(connection: Connection, ids: Collection[str]) -> dict[str, LocationGroup]:
    wanted = sorted(ids)
    names = dict(connection.execute(select(gt.c.id, gt.c.name).where(gt.c.id.in_(wanted))).all())
    members: defaultdict[str, set[str]] = defaultdict(set)
    for group_id, location_id in connection.execute(
        select(mt.c.group_id, mt.c.location_id).where(mt.c.group_id.in_(wanted))
    ):
        members[group_id].add(location_id)
    return {
        group_id: LocationGroup(group_id, name, frozenset(members[group_id]))
        for group_id, name in names.items()
    }


def _channels(connection: Connection, stmt: Select[Any]) -> dict[str, Channel]:
    rows = connection.execute(stmt).all()
    protection: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for channel_id, location_id, units in connection.execute(
        select(cp.c.channel_id, cp.c.location_id, cp.c.units).where(
            cp.c.channel_id.in_([row.id for row in rows])
        )
    ):
        protection[channel_id][location_id] = units
    return {
        row.id: Channel(
            row.id,
            row.name,
            row.group_id,
            protection=dict(protection[row.id]),
            default_protection=row.default_protection,
            sells_incoming=bool(row.sells_incoming),
            low_threshold=row.low_threshold,
        )
        for row in rows
    }
