"""Managing location groups and channels: validation against the locations, then the store.

The rules a channel answer follows live in domain/channels.py; this is the admin half.
Writes are all or nothing: an unknown location or member group, a group that leads back
to itself through member groups, a protection at a location outside the channel's
(resolved) group, or an unknown group is INVALID_ARGUMENT with a violation naming the
field (the API's field paths). Every write that succeeds says so on the change bus
(``Changes(channels=True)``), so every copy of a group or channel, and every key bound
to a channel, is read again here and in every other process.

Reads go through the caller's scope: a key bound to channels sees those channels and the
groups they sell from (member groups included), and nothing else, PERMISSION_DENIED
whether or not the asked one exists; a location outside the caller's locations is left
out of a group's members, of its resolved count, and of a channel's protections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from omnistock.server.domain.channels import (
    Channel,
    LocationGroup,
    group_cycle,
    reachable_groups,
    resolve_group,
)
from omnistock.server.domain.errors import NotFound, Violations
from omnistock.server.domain.feed_order import MAX_QUANTITY
from omnistock.server.domain.ids import check_id, is_valid_id
from omnistock.server.domain.security import PermissionDenied, Principal
from omnistock.server.service.changes import ChangeBus, Changes
from omnistock.server.store.channels import ChannelRepository

# The most groups or channels one call may write, the most locations a group names
# directly, and the most member groups it takes in.
MAX_UPSERT = 100
MAX_GROUP_MEMBERS = 20_000
MAX_MEMBER_GROUPS = 100
MAX_NAME = 200

# A caller who sees everything.
UNSCOPED = Principal(key_id="-", name="unscoped", roles=frozenset())


@dataclass(frozen=True, slots=True)
class ShownGroup:
    """A group as one caller may see it, with how many locations it resolves to (member
    groups included, each once, only those the caller may see)."""

    group: LocationGroup
    resolved_location_count: int


class ChannelAdmin:
    def __init__(
        self,
        repository: ChannelRepository,
        known_locations: Callable[[Iterable[str]], set[str]],
        *,
        clock: Callable[[], datetime],
        changes: ChangeBus | None = None,
    ) -> None:
        self._repository = repository
        self._known = known_locations
        self._clock = clock
        self._changes = changes or ChangeBus()

    # -- groups

    def upsert_groups(
        self,
        groups: Sequence[LocationGroup],
        who: Principal = UNSCOPED,
        *,
        found: Violations | None = None,
    ) -> list[ShownGroup]:
        """Create or replace groups; each as ``who`` may see it. ``found``: violations the
        caller found already, raised with these."""
        v = found if found is not None else Violations()
        v.check(1 <= len(groups) <= MAX_UPSERT, "groups", f"must hold 1 to {MAX_UPSERT} groups")
        known = self._known({location for group in groups for location in group.location_ids})
        stored = self._repository.all_groups()
        after = {**stored, **{group.id: group for group in groups}}
        seen: set[str] = set()
        for i, group in enumerate(groups):
            prefix = f"groups[{i}]."
            check_id(v, group.id, f"{prefix}group_id")
            v.check(group.id not in seen, f"{prefix}group_id", "appears twice in this request")
            seen.add(group.id)
            _check_name(v, group.name, f"{prefix}display_name")
            _check_members(v, group, known, after, prefix)
        v.raise_if_any()
        now = self._clock()
        self._repository.upsert_groups(groups, now=now)
        self._changes.publish(Changes(channels=True))
        return [_shown(replace(group, updated_at=now), after, who) for group in groups]

    def change_members(
        self,
        group_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        add_groups: Sequence[str] = (),
        remove_groups: Sequence[str] = (),
        who: Principal = UNSCOPED,
    ) -> ShownGroup:
        """Add and remove members of one group; the group after, as ``who`` may see it."""
        v = Violations()
        check_id(v, group_id, "group_id")
        v.raise_if_any()
        stored = self._repository.all_groups()
        if group_id not in stored:
            raise NotFound("location group", [group_id], reason="GROUP_NOT_FOUND")
        current = stored[group_id]
        changed = replace(
            current,
            location_ids=(current.location_ids | set(add)) - set(remove),
            member_group_ids=(current.member_group_ids | set(add_groups)) - set(remove_groups),
        )
        known = self._known(add)
        _check_members(
            v, changed, known | (changed.location_ids - set(add)), {**stored, group_id: changed},
            "", fields=("add_location_ids", "add_group_ids"),
        )  # fmt: skip
        v.raise_if_any()
        group = self._repository.change_members(
            group_id,
            add=add,
            remove=remove,
            add_groups=add_groups,
            remove_groups=remove_groups,
            now=self._clock(),
        )
        if group is None:  # deleted meanwhile
            raise NotFound("location group", [group_id], reason="GROUP_NOT_FOUND")
        self._changes.publish(Changes(channels=True))
        return _shown(group, {**stored, group_id: group}, who)

    def group(self, group_id: str, who: Principal) -> ShownGroup:
        groups = self._repository.all_groups()
        visible = self._visible_groups(who, groups)
        if visible is not None and group_id not in visible:
            raise PermissionDenied(
                f"{who.name} may not use location group {group_id}", reason="GROUP_NOT_IN_SCOPE"
            )
        if group_id not in groups:
            raise NotFound("location group", [group_id], reason="GROUP_NOT_FOUND")
        return _shown(groups[group_id], groups, who)

    def group_page(self, who: Principal, *, after_id: str, limit: int) -> list[ShownGroup]:
        groups = self._repository.all_groups()
        page = self._repository.group_page(
            after_id=after_id, limit=limit, ids=self._visible_groups(who, groups)
        )
        return [_shown(group, groups, who) for group in page]

    def _visible_groups(
        self, who: Principal, groups: dict[str, LocationGroup]
    ) -> frozenset[str] | None:
        """The groups a key bound to channels may see: its channels' groups and their
        member groups. None: every group."""
        if who.channels is None:
            return None
        channels = self._repository.channels(who.channels)
        return reachable_groups({c.group_id for c in channels.values()}, groups)

    # -- channels

    def upsert_channels(
        self, channels: Sequence[Channel], *, found: Violations | None = None
    ) -> list[Channel]:
        """Create or replace channels. ``found``: violations the caller found already."""
        v = found if found is not None else Violations()
        v.check(
            1 <= len(channels) <= MAX_UPSERT, "channels", f"must hold 1 to {MAX_UPSERT} channels"
        )
        groups = self._repository.all_groups()
        seen: set[str] = set()
        for i, channel in enumerate(channels):
            prefix = f"channels[{i}]."
            check_id(v, channel.id, f"{prefix}channel_id")
            v.check(channel.id not in seen, f"{prefix}channel_id", "appears twice in this request")
            seen.add(channel.id)
            _check_name(v, channel.name, f"{prefix}display_name")
            has_group = channel.group_id in groups
            if is_valid_id(channel.group_id):
                v.check(has_group, f"{prefix}group_id", f"no group {channel.group_id!r}")
            else:
                check_id(v, channel.group_id, f"{prefix}group_id")
            members = resolve_group(channel.group_id, groups)
            _check_units(v, channel.default_protection, f"{prefix}default_protection")
            for j, (location_id, units) in enumerate(channel.protection.items()):
                field = f"{prefix}protections[{j}]"
                _check_units(v, units, f"{field}.units")
                v.check(
                    not has_group or location_id in members,
                    f"{field}.location_id",
                    f"location {location_id!r} is not in group {channel.group_id!r}",
                )
            v.check(
                1 <= channel.low_threshold <= MAX_QUANTITY,
                f"{prefix}low_threshold",
                f"must be within [1, {MAX_QUANTITY:,}]",
            )
            v.check(bool(channel.methods), f"{prefix}methods", "must offer SHIP or PICKUP")
        v.raise_if_any()
        now = self._clock()
        self._repository.upsert_channels(channels, now=now)
        self._changes.publish(Changes(channels=True))
        return [replace(channel, updated_at=now) for channel in channels]

    def channel(self, channel_id: str, who: Principal) -> Channel:
        who.require_channels([channel_id])
        found = self._repository.channels([channel_id]).get(channel_id)
        if found is None:
            raise NotFound("channel", [channel_id], reason="CHANNEL_NOT_FOUND")
        return _shown_channel(found, who)

    def channel_page(self, who: Principal, *, after_id: str, limit: int) -> list[Channel]:
        page = self._repository.channel_page(after_id=after_id, limit=limit, ids=who.channels)
        return [_shown_channel(channel, who) for channel in page]


def _check_members(
    v: Violations,
    group: LocationGroup,
    known: set[str],
    after: dict[str, LocationGroup],
    prefix: str,
    *,
    fields: tuple[str, str] = ("location_ids", "member_group_ids"),
) -> None:
    """A group's members: at most so many, each location known, each member group
    existing (stored or written in the same call), and no path back to the group."""
    locations, members = (prefix + name for name in fields)
    if len(group.location_ids) > MAX_GROUP_MEMBERS:
        v.add(locations, f"must hold at most {MAX_GROUP_MEMBERS:,} locations")
    else:
        for location_id in sorted(group.location_ids - known):
            v.add(locations, f"no location {location_id!r}")
    if len(group.member_group_ids) > MAX_MEMBER_GROUPS:
        v.add(members, f"must hold at most {MAX_MEMBER_GROUPS} groups")
        return
    missing = sorted(g for g in group.member_group_ids if g not in after)
    for member in missing:
        v.add(members, f"no group {member!r}")
    if not missing and group.id in after:
        cycle = group_cycle(group.id, after)
        if cycle is not None:
            v.add(members, f"group {group.id!r} would contain itself: {' -> '.join(cycle)}")


def _shown(group: LocationGroup, groups: dict[str, LocationGroup], who: Principal) -> ShownGroup:
    resolved = resolve_group(group.id, groups)
    if who.locations is None:
        return ShownGroup(group, len(resolved))
    return ShownGroup(
        replace(group, location_ids=group.location_ids & who.locations),
        len(resolved & who.locations),
    )


def _shown_channel(channel: Channel, who: Principal) -> Channel:
    if who.locations is None:
        return channel
    kept = {k: units for k, units in channel.protection.items() if who.may_see(k)}
    return replace(channel, protection=kept)


def _check_name(v: Violations, name: str, field: str) -> None:
    v.check(0 < len(name.strip()) <= MAX_NAME, field, f"must be 1-{MAX_NAME} characters")


def _check_units(v: Violations, units: int, field: str) -> None:
    v.check(0 <= units <= MAX_QUANTITY, field, f"must be within [0, {MAX_QUANTITY:,}]")
