"""Location groups and channels: the channel repository."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from omnistock.server.domain.channels import (
    Channel,
    ChannelMethod,
    ChannelView,
    LocationGroup,
    resolve_group,
)
from omnistock.server.domain.timeutil import from_micros, to_micros
from omnistock.server.store.database import write_transaction
from omnistock.server.store.tables import channel_protection_table as cp
from omnistock.server.store.tables import channels_table as ct
from omnistock.server.store.tables import location_group_children_table as kt
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
            connection.execute(delete(kt).where(kt.c.group_id.in_(ids)))
            members = [
                {"group_id": g.id, "location_id": location_id}
                for g in groups
                for location_id in sorted(g.location_ids)
            ]
            if members:
                connection.execute(insert(mt), members)
            children = [
                {"group_id": g.id, "member_group_id": child}
                for g in groups
                for child in sorted(g.member_group_ids)
            ]
            if children:
                connection.execute(insert(kt), children)

    def change_members(
        self,
        group_id: str,
        *,
        add: Collection[str],
        remove: Collection[str],
        now: datetime,
        add_groups: Collection[str] = (),
        remove_groups: Collection[str] = (),
    ) -> LocationGroup | None:
        """Add and remove members (locations and member groups) of one group; the group
        as it is then (None: no group)."""
        with write_transaction(self._engine) as connection:
            found = _groups(connection, [group_id])
            if group_id not in found:
                return None
            members = (found[group_id].location_ids | set(add)) - set(remove)
            children = (found[group_id].member_group_ids | set(add_groups)) - set(remove_groups)
            connection.execute(delete(mt).where(mt.c.group_id == group_id))
            connection.execute(delete(kt).where(kt.c.group_id == group_id))
            if members:
                connection.execute(
                    insert(mt),
                    [{"group_id": group_id, "location_id": m} for m in sorted(members)],
                )
            if children:
                connection.execute(
                    insert(kt),
                    [{"group_id": group_id, "member_group_id": c} for c in sorted(children)],
                )
            connection.execute(
                gt.update().where(gt.c.id == group_id).values(updated_at_us=to_micros(now))
            )
            return LocationGroup(
                group_id,
                found[group_id].name,
                frozenset(members),
                frozenset(children),
                updated_at=now,
            )

    def all_groups(self) -> dict[str, LocationGroup]:
        """Every group: what resolving member groups needs (groups are few)."""
        with self._engine.connect() as connection:
            return _groups(connection, list(connection.execute(select(gt.c.id)).scalars()))

    def groups(self, ids: Collection[str]) -> dict[str, LocationGroup]:
        with self._engine.connect() as connection:
            return _groups(connection, ids)

    def group_page(
        self, *, after_id: str, limit: int, ids: Collection[str] | None = None
    ) -> list[LocationGroup]:
        """Groups after ``after_id`` in id order (of ``ids`` only, when given)."""
        stmt = select(gt.c.id).where(gt.c.id > after_id).order_by(gt.c.id).limit(limit)
        if ids is not None:
            stmt = stmt.where(gt.c.id.in_(sorted(ids)))
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
        columns = [
            "name",
            "group_id",
            "default_protection",
            "sells_incoming",
            "low_threshold",
            "ship_enabled",
            "pickup_enabled",
        ]
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
                        "ship_enabled": ChannelMethod.SHIP in c.methods,
                        "pickup_enabled": ChannelMethod.PICKUP in c.methods,
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

    def view(self, channel_id: str) -> ChannelView | None:
        """A channel with its group's locations resolved (member groups included)."""
        channel = self.channels([channel_id]).get(channel_id)
        if channel is None:
            return None
        return ChannelView(channel, resolve_group(channel.group_id, self.all_groups()))

    def resolved_locations(self, channel_ids: Collection[str]) -> frozenset[str]:
        """Every location of the groups of these channels (member groups included);
        channels that do not exist add nothing."""
        channels = self.channels(channel_ids)
        if not channels:
            return frozenset()
        groups = self.all_groups()
        return frozenset().union(*(resolve_group(c.group_id, groups) for c in channels.values()))

    def channel_page(
        self, *, after_id: str, limit: int, ids: Collection[str] | None = None
    ) -> list[Channel]:
        """Channels after ``after_id`` in id order (of ``ids`` only, when given)."""
        stmt = select(ct).where(ct.c.id > after_id).order_by(ct.c.id).limit(limit)
        if ids is not None:
            stmt = stmt.where(ct.c.id.in_(sorted(ids)))
        with self._engine.connect() as connection:
            return list(_channels(connection, stmt).values())


def _groups(connection: Connection, ids: Collection[str]) -> dict[str, LocationGroup]:
    wanted = sorted(ids)
    rows = connection.execute(
        select(gt.c.id, gt.c.name, gt.c.updated_at_us).where(gt.c.id.in_(wanted))
    ).all()
    members: defaultdict[str, set[str]] = defaultdict(set)
    for group_id, location_id in connection.execute(
        select(mt.c.group_id, mt.c.location_id).where(mt.c.group_id.in_(wanted))
    ):
        members[group_id].add(location_id)
    children: defaultdict[str, set[str]] = defaultdict(set)
    for group_id, child in connection.execute(
        select(kt.c.group_id, kt.c.member_group_id).where(kt.c.group_id.in_(wanted))
    ):
        children[group_id].add(child)
    return {
        group_id: LocationGroup(
            group_id,
            name,
            frozenset(members[group_id]),
            frozenset(children[group_id]),
            updated_at=from_micros(updated_at_us),
        )
        for group_id, name, updated_at_us in rows
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
            methods=frozenset(
                method
                for method, enabled in (
                    (ChannelMethod.SHIP, row.ship_enabled),
                    (ChannelMethod.PICKUP, row.pickup_enabled),
                )
                if enabled
            ),
            updated_at=from_micros(row.updated_at_us),
        )
        for row in rows
    }
