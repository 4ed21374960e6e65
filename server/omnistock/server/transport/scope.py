"""Who may call each method, and how the caller's scope applies to it: one table, one check.

``METHOD_SCOPES`` names, for every RPC, the role it needs and its scope rule, for every
role (admin included). docs/security.md shows the same table; tests/security/
test_scope_table.py checks that the two agree, that the table covers every RPC of the
service descriptors, and calls every RPC with an out-of-scope key.

The rules come in three kinds, and a method may have several:

- **names**: request fields that name locations. Before the servicer runs, ``admit``
  refuses a scoped caller that names a location outside its scope: PERMISSION_DENIED,
  reason LOCATION_NOT_IN_SCOPE, the same answer whether or not the location exists (the
  check reads nothing, so it cannot tell them apart).
- **filtered**: the answer is made only of the locations the caller may see, chosen
  before any paging, limit or ranking (the servicer hands ``principal().locations`` to
  the service, which filters in its query).
- **by reservation id**: the reservation is read through the caller's scope, so one at
  a location it may not see is NOT_FOUND exactly as one that does not exist.

A location-scoped admin may replace the locations of its scope but not create new ones:
a new location belongs to no scope yet, so only an unscoped admin may make it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omnistock.server.domain.security import PermissionDenied, Principal, Role


@dataclass(frozen=True, slots=True)
class MethodScope:
    role: Role
    # The rule in words, exactly as docs/security.md's table says it.
    rule: str
    # Request fields that name locations: "field", "repeated[]", "repeated[].field",
    # "message.field". Empty values are left to the servicer's validation.
    names: tuple[str, ...] = ()
    # Answers hold only the locations (or their reservations) the caller may see.
    filtered: bool = False
    # The request names a reservation, read through the caller's scope.
    by_reservation: bool = False
    # A scoped caller may replace existing locations of its scope, not create new ones.
    existing_only: bool = False
    # Each successful call is written to the audit log.
    writes: bool = False


_PREFIX = "/omnistock.v1."
_NAMED = "named locations outside the scope: PERMISSION_DENIED, whether or not they exist"
_HIDDEN_RESERVATION = (
    "a reservation at a location outside the scope: NOT_FOUND, as one that does not exist"
)
_LIST = "only the locations in scope, filtered before paging"
_CHANNEL_VIEW = (
    "a key bound to channels sees only those channels and their groups (others: "
    "PERMISSION_DENIED, whether or not they exist); locations outside the scope are left "
    "out of groups and protections"
)

_CHANNEL_ANSWERS = (
    "channels: a key bound to channels may name only those, and a key scoped to locations "
    "and bound to none may name no channel (PERMISSION_DENIED, CHANNEL_NOT_IN_SCOPE)"
)

METHOD_SCOPES: dict[str, MethodScope] = {
    f"{_PREFIX}LocationService/UpsertLocations": MethodScope(
        Role.ADMIN,
        f"{_NAMED}; a scoped admin may replace its own locations but not create new ones",
        names=("locations[].id",),
        existing_only=True,
        writes=True,
    ),
    f"{_PREFIX}LocationService/GetLocation": MethodScope(Role.READ, _NAMED, names=("location_id",)),
    f"{_PREFIX}LocationService/ListLocations": MethodScope(Role.READ, _LIST, filtered=True),
    f"{_PREFIX}AvailabilityService/GetAvailability": MethodScope(
        Role.READ,
        f"{_NAMED}; none named: every active location in scope; {_CHANNEL_ANSWERS}",
        names=("location_ids[]",),
        filtered=True,
    ),
    f"{_PREFIX}AvailabilityService/BatchGetAvailability": MethodScope(
        Role.READ, f"{_NAMED}; {_CHANNEL_ANSWERS}", names=("items[].location_id",)
    ),
    f"{_PREFIX}AvailabilityService/SearchNearby": MethodScope(
        Role.READ,
        "only stores and shipping locations in scope, chosen before the limit; a postal "
        "code resolves from the postal code table and the locations in scope",
        filtered=True,
    ),
    f"{_PREFIX}AvailabilityService/GetFulfillmentOptions": MethodScope(
        Role.READ,
        "only stores and shipping locations in scope; a postal code resolves as for SearchNearby",
        filtered=True,
    ),
    f"{_PREFIX}AvailabilityService/WatchAvailability": MethodScope(
        Role.READ,
        f"pairs: {_NAMED}; by origin: the nearest stores in scope, chosen before the limit;"
        f" {_CHANNEL_ANSWERS}",
        names=("pairs[].location_id",),
        filtered=True,
    ),
    f"{_PREFIX}FeedService/ApplyStockUpdates": MethodScope(
        Role.FEED, _NAMED, names=("updates[].location_id",), writes=True
    ),
    f"{_PREFIX}FeedService/ImportSnapshot": MethodScope(
        Role.FEED, _NAMED, names=("header.location_id",), writes=True
    ),
    f"{_PREFIX}FeedService/StreamDeltas": MethodScope(
        Role.FEED,
        f"{_NAMED}; checked per message, and a message naming one ends the stream",
        names=("records[].location_id",),
        writes=True,
    ),
    f"{_PREFIX}FeedService/ApplyIncomingUpdates": MethodScope(
        Role.FEED, _NAMED, names=("updates[].location_id",), writes=True
    ),
    f"{_PREFIX}FeedService/ImportIncomingSnapshot": MethodScope(
        Role.FEED, _NAMED, names=("location_id",), writes=True
    ),
    f"{_PREFIX}FeedService/ListIncomingSupply": MethodScope(
        Role.FEED,
        f"{_NAMED}; otherwise only lines at locations in scope, filtered before paging",
        names=("location_id",),
        filtered=True,
    ),
    f"{_PREFIX}FeedService/GetFeedStatus": MethodScope(Role.FEED, _NAMED, names=("location_id",)),
    f"{_PREFIX}FeedService/ListFeedStatus": MethodScope(Role.FEED, _LIST, filtered=True),
    f"{_PREFIX}FeedService/ExportStock": MethodScope(
        Role.FEED,
        f"{_NAMED}; none named: only the active locations in scope",
        names=("location_id",),
        filtered=True,
    ),
    f"{_PREFIX}ReservationService/CreateReservation": MethodScope(
        Role.RESERVE,
        f"{_NAMED}; idempotency keys are per key (principal); a network hold is placed only "
        "at locations in scope",
        names=("location_id",),
        writes=True,
    ),
    f"{_PREFIX}ReservationService/GetReservation": MethodScope(
        Role.RESERVE, _HIDDEN_RESERVATION, by_reservation=True
    ),
    f"{_PREFIX}ReservationService/ListReservations": MethodScope(
        Role.RESERVE,
        f"{_NAMED}; otherwise only reservations at locations in scope, filtered before paging",
        names=("location_id",),
        filtered=True,
    ),
    f"{_PREFIX}ReservationService/MoveReservation": MethodScope(
        Role.RESERVE,
        f"{_HIDDEN_RESERVATION}; the new location: {_NAMED}",
        names=("location_id",),
        by_reservation=True,
        writes=True,
    ),
    f"{_PREFIX}ChannelService/UpsertLocationGroups": MethodScope(
        Role.ADMIN, _NAMED, names=("groups[].location_ids[]",), writes=True
    ),
    f"{_PREFIX}ChannelService/UpdateLocationGroupMembers": MethodScope(
        Role.ADMIN,
        _NAMED,
        names=("add_location_ids[]", "remove_location_ids[]"),
        writes=True,
    ),
    f"{_PREFIX}ChannelService/UpsertChannels": MethodScope(
        Role.ADMIN,
        f"{_NAMED}; a key bound to channels may write those channels only",
        names=("channels[].protections[].location_id",),
        writes=True,
    ),
    f"{_PREFIX}ChannelService/GetLocationGroup": MethodScope(
        Role.READ, _CHANNEL_VIEW, filtered=True
    ),
    f"{_PREFIX}ChannelService/ListLocationGroups": MethodScope(
        Role.READ, _CHANNEL_VIEW, filtered=True
    ),
    f"{_PREFIX}ChannelService/GetChannel": MethodScope(Role.READ, _CHANNEL_VIEW, filtered=True),
    f"{_PREFIX}ChannelService/ListChannels": MethodScope(Role.READ, _CHANNEL_VIEW, filtered=True),
    **{
        f"{_PREFIX}ReservationService/{name}": MethodScope(
            Role.RESERVE, _HIDDEN_RESERVATION, by_reservation=True, writes=True
        )
        for name in (
            "ExtendReservation",
            "CommitReservation",
            "FulfillReservation",
            "ReleaseReservation",
        )
    },
}

# What a method missing from the table gets: nothing but an admin, and nothing named.
UNLISTED = MethodScope(Role.ADMIN, "not in the table: admin only")


def named_locations(message: Any, path: str) -> Iterator[str]:
    """The non-empty location ids a request field path names."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        for item in getattr(message, head[:-2]):
            if rest:
                yield from named_locations(item, rest)
            elif item:
                yield item
    elif rest:
        if message.HasField(head):
            yield from named_locations(getattr(message, head), rest)
    else:
        value = getattr(message, head)
        if value:
            yield value


ExistingLocations = Callable[[list[str]], Awaitable[set[str]]]


class ScopeGuard:
    """Applies a method's scope rule to one request message (every message of a stream)
    before the servicer sees it. Only scoped callers are checked: an unscoped one may
    name any location."""

    def __init__(self, existing_locations: ExistingLocations | None = None) -> None:
        # Which of some ids name a location: for a scoped admin's upserts only.
        self._existing = existing_locations

    @staticmethod
    def applies(scope: MethodScope, who: Principal) -> bool:
        return who.locations is not None and bool(scope.names)

    async def admit(self, scope: MethodScope, who: Principal, message: Any) -> None:
        named = list(
            dict.fromkeys(
                location for path in scope.names for location in named_locations(message, path)
            )
        )
        who.require_locations(named)
        if scope.existing_only and named:
            existing = set() if self._existing is None else await self._existing(named)
            new = [location for location in named if location not in existing]
            if new:
                raise PermissionDenied(
                    f"{who.name} may replace the locations of its scope but not create "
                    f"{new[0]}: creating a location needs an unscoped admin key",
                    reason="LOCATION_CREATE_NOT_ALLOWED",
                )
