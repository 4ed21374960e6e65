"""Managing location groups and channels: validation against the locations, then the store.

The rules a channel answer follows live in domain/channels.py; this is the admin half.
An unknown location, a protection at a location outside the channel's group, or an
unknown group is INVALID_ARGUMENT with a violation naming the field: all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from omnistock.server.domain.channels import Channel, LocationGroup
from omnistock.server.domain.errors import NotFound, Violations
from omnistock.server.domain.feed_order import MAX_QUANTITY
from omnistock.server.domain.ids import check_id
from omnistock.server.store.channels import ChannelRepository

# The most groups or channels one call may write, and the most members one group has.
MAX_UPSERT = 100
MAX_GROUP_MEMBERS = 20_000
MAX_NAME = 200


class ChannelAdmin:
    def __init__(
        self,
        repository: ChannelRepository,
        known_locations: Callable[[Iterable[str]], set[str]],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._repository = repository
        self._known = known_locations
        self._clock = clock

    def upsert_groups(self, groups: Sequence[LocationGroup]) -> None:
        v = Violations()
        v.check(1 <= len(groups) <= MAX_UPSERT, "groups", f"must hold 1 to {MAX_UPSERT} groups")
        named = {location for group in groups for location in group.location_ids}
        known = self._known(named)
        seen: set[str] = set()
        for i, group in enumerate(groups):
            prefix = f"groups[{i}]."
            check_id(v, group.id, f"{prefix}id")
            v.check(group.id not in seen, f"{prefix}id", "appears twice in this request")
            seen.add(group.id)
            _check_name(v, group.name, f"{prefix}name")
            v.check(
                len(group.location_ids) <= MAX_GROUP_MEMBERS,
                f"{prefix}location_ids",
                f"must hold at most {MAX_GROUP_MEMBERS:,} locations",
            )
            for location_id in sorted(group.location_ids - known):
                v.add(f"{prefix}location_ids", f"no location {location_id!r}")
        v.raise_if_any()
        self._repository.upsert_groups(groups, now=self._clock())

    def change_members(
        self, group_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> LocationGroup:
        v = Violations()
        check_id(v, group_id, "group_id")
        for location_id in sorted(set(add) - self._known(add)):
            v.add("add", f"no location {location_id!r}")
        v.raise_if_any()
        group = self._repository.change_members(group_id, add=add, remove=remove, now=self._clock())
        if group is None:
            raise NotFound("location group", [group_id], reason="GROUP_NOT_FOUND")
        return group

    def group(self, group_id: str) -> LocationGroup:
        found = self._repository.groups([group_id]).get(group_id)
        if found is None:
            raise NotFound("location group", [group_id], reason="GROUP_NOT_FOUND")
        return found

    def group_page(self, *, after_id: str, limit: int) -> list[LocationGroup]:
        return self._repository.group_page(after_id=after_id, limit=limit)

    def upsert_channels(self, channels: Sequence[Channel]) -> None:
        v = Violations()
        v.check(
            1 <= len(channels) <= MAX_UPSERT, "channels", f"must hold 1 to {MAX_UPSERT} channels"
        )
        groups = self._repository.groups({c.group_id for c in channels})
        seen: set[str] = set()
        for i, channel in enumerate(channels):
            prefix = f"channels[{i}]."
            check_id(v, channel.id, f"{prefix}id")
            v.check(channel.id not in seen, f"{prefix}id", "appears twice in this request")
            seen.add(channel.id)
            _check_name(v, channel.name, f"{prefix}name")
            group = groups.get(channel.group_id)
            v.check(group is not None, f"{prefix}group_id", f"no group {channel.group_id!r}")
            _check_units(v, channel.default_protection, f"{prefix}default_protection")
            for location_id, units in sorted(channel.protection.items()):
                field = f"{prefix}protection[{location_id}]"
                _check_units(v, units, field)
                v.check(
                    group is None or location_id in group.location_ids,
                    field,
                    f"location {location_id!r} is not in group {channel.group_id!r}",
                )
            v.check(
                1 <= channel.low_threshold <= MAX_QUANTITY,
                f"{prefix}low_threshold",
                f"must be within [1, {MAX_QUANTITY:,}]",
            )
        v.raise_if_any()
        self._repository.upsert_channels(channels, now=self._clock())

    def channel(self, channel_id: str) -> Channel:
        found = self._repository.channels([channel_id]).get(channel_id)
        if found is None:
            raise NotFound("channel", [channel_id], reason="CHANNEL_NOT_FOUND")
        return found

    def channel_page(self, *, after_id: str, limit: int) -> list[Channel]:
        return self._repository.channel_page(after_id=after_id, limit=limit)


def _check_name(v: Violations, name: str, field: str) -> None:
    v.check(0 < len(name.strip()) <= MAX_NAME, field, f"must be 1-{MAX_NAME} characters")


def _check_units(v: Violations, units: int, field: str) -> None:
    v.check(0 <= units <= MAX_QUANTITY, field, f"must be within [0, {MAX_QUANTITY:,}]")
