"""The roles a key needs, for the `omnistock` command's help texts: read from the one scope
table (``METHOD_SCOPES``, which the server enforces and docs/security.md prints), so a help
text cannot promise a key the server would refuse."""

from __future__ import annotations

from collections import defaultdict

from omnistock.server.domain.security import Role
from omnistock.server.transport.scope import METHOD_SCOPES

_PREFIX = "/omnistock.v1."

# The RPCs each file command calls, per format.
COMMAND_METHODS: dict[str, tuple[str, ...]] = {
    "import csv/jsonl": ("FeedService/StreamDeltas", "FeedService/ImportSnapshot"),
    # A google-local line's on_hand is worked out from the record and the location's
    # default safety stock (files/current.py).
    "import google-local": (
        "FeedService/StreamDeltas",
        "FeedService/ExportStock",
        "LocationService/GetLocation",
    ),
    # Google's feed gives each store's pickup columns, read from the location directory.
    "export google-local": (
        "FeedService/ExportStock",
        "LocationService/ListLocations",
        "LocationService/GetLocation",
    ),
    "export csv/jsonl": ("FeedService/ExportStock",),
    # A channel's feeds read the channel and its groups too; the products feed also asks
    # the channel's answers and every location's incoming lines.
    "export google-local --channel": (
        "FeedService/ExportStock",
        "LocationService/ListLocations",
        "ChannelService/GetChannel",
        "ChannelService/GetLocationGroup",
    ),
    "export google-products": (
        "FeedService/ExportStock",
        "FeedService/ListIncomingSupply",
        "ChannelService/GetChannel",
        "ChannelService/GetLocationGroup",
        "AvailabilityService/BatchGetAvailability",
    ),
    "channels load": ("ChannelService/UpsertLocationGroups", "ChannelService/UpsertChannels"),
    "channels list": ("ChannelService/ListLocationGroups", "ChannelService/ListChannels"),
    "import-incoming": ("FeedService/ApplyIncomingUpdates",),
}
# ExportStock answers exact counts, so its key needs the exact grant.
EXACT_METHODS = frozenset({"FeedService/ExportStock"})


def roles_for(command: str) -> list[Role]:
    """The roles a key needs for ``command`` (a key of COMMAND_METHODS)."""
    needed = {METHOD_SCOPES[_PREFIX + method].role for method in COMMAND_METHODS[command]}
    return sorted(needed, key=lambda role: role.value)


def key_recipe(command: str) -> str:
    """The `omnistock keys create` flags for a key that can run ``command``."""
    flags = " ".join(f"--role {role.value}" for role in roles_for(command))
    if EXACT_METHODS & set(COMMAND_METHODS[command]):
        flags += " --exposure exact"
    return flags


def role_table() -> str:
    """Each role and the RPCs that need it: the scope table, shortened for a terminal."""
    by_role: dict[Role, list[str]] = defaultdict(list)
    for method, scope in METHOD_SCOPES.items():
        by_role[scope.role].append(method.removeprefix(_PREFIX))
    lines = ["roles and the methods each needs (admin may call every method):"]
    for role in Role:
        methods = by_role.get(role, [])
        lines.append(f"  {role.value}:")
        lines.extend(f"    {method}" for method in methods)
    lines.append("keys for the commands here:")
    lines.extend(f"  {command}: {key_recipe(command)}" for command in COMMAND_METHODS)
    return "\n".join(lines)
