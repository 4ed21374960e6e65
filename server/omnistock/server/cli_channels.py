"""`omnistock channels load FILE` and `omnistock channels list`: location groups and
channels, through a server's ChannelService (so a load is validated, audited and seen by
every server process at once).

The file is JSON: ``{"groups": [...], "channels": [...]}``, each item a LocationGroup or a
Channel in the proto's JSON mapping (``groupId`` or ``group_id``, ``locationIds``,
``memberGroupIds``, ``methods: ["CHANNEL_METHOD_SHIP"]``, ``protections: [{"locationId":
..., "units": 2}]``...). Groups are written before channels, 100 to a call, in file
order: a member group must come in the same hundred or before. Each call is all or
nothing; a bad file is one line on stderr and exit status 2 before anything is sent, a
call the server refuses is one line and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnistock.server.cli_errors import USAGE, CommandError

# The most groups or channels one call takes (ChannelAdmin.MAX_UPSERT).
BATCH = 100
_KEYS = ("groups", "channels")


def read_file(path: Path) -> tuple[list[Any], list[Any]]:
    """The file's groups and channels as messages; CommandError (usage) when it is not a
    file of them."""
    from google.protobuf import json_format
    from omnistock.v1 import channel_pb2

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror}", exit_status=USAGE) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommandError(f"{path}: not JSON: {error}", exit_status=USAGE) from None
    if not isinstance(data, dict) or not set(data) <= set(_KEYS) or not data:
        raise CommandError(
            f'{path}: must be a JSON object with "groups" and/or "channels" lists',
            exit_status=USAGE,
        )
    parsed: dict[str, list[Any]] = {}
    for key, message in (("groups", channel_pb2.LocationGroup), ("channels", channel_pb2.Channel)):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise CommandError(f'{path}: "{key}" must be a list', exit_status=USAGE)
        parsed[key] = []
        for i, item in enumerate(items):
            try:
                parsed[key].append(json_format.ParseDict(item, message()))
            except json_format.ParseError as error:
                raise CommandError(f"{path}: {key}[{i}]: {error}", exit_status=USAGE) from None
    return parsed["groups"], parsed["channels"]


def _batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def _load(args: argparse.Namespace) -> int:
    from omnistock.client import ApiError, Client
    from omnistock.server.files.report import describe_error

    groups, channels = read_file(args.file)
    try:
        with Client(args.target, api_key=args.api_key) as client:
            for batch in _batches(groups):
                client.upsert_location_groups(batch)
            for batch in _batches(channels):
                client.upsert_channels(batch)
    except ApiError as error:
        raise CommandError(describe_error(error)) from None
    print(f"loaded {len(groups)} groups and {len(channels)} channels")
    return 0


def _methods(channel: Any) -> str:
    from omnistock.v1 import channel_pb2

    return ", ".join(
        channel_pb2.ChannelMethod.Name(m).removeprefix("CHANNEL_METHOD_") for m in channel.methods
    )


def _list(args: argparse.Namespace) -> int:
    from omnistock.client import ApiError, Client
    from omnistock.server.files.report import describe_error

    try:
        with Client(args.target, api_key=args.api_key) as client:
            for group in client.list_location_groups(page_size=1000):
                members = f"; member groups {', '.join(group.member_group_ids)}"
                print(
                    f"group {group.group_id} ({group.display_name}): "
                    f"{group.resolved_location_count} locations"
                    + (members if group.member_group_ids else "")
                )
            for channel in client.list_channels(page_size=1000):
                protections = f" ({len(channel.protections)} per location)"
                print(
                    f"channel {channel.channel_id} ({channel.display_name}): group "
                    f"{channel.group_id}; {_methods(channel)}; protection "
                    f"{channel.default_protection}"
                    + (protections if channel.protections else "")
                    + ("; sells incoming" if channel.sells_incoming else "")
                    + f"; low threshold {channel.low_threshold}"
                )
    except ApiError as error:
        raise CommandError(describe_error(error)) from None
    return 0


def unknown_channels(engine: Any, channel_ids: Sequence[str]) -> list[str]:
    """Those of the ids that name no channel in the database, in order."""
    from omnistock.server.store.channels import ChannelRepository

    if not channel_ids:
        return []
    found = ChannelRepository(engine).channels(channel_ids)
    return [c for c in channel_ids if c not in found]


def add_channels_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from omnistock.server.cli_keys import key_recipe

    channels = commands.add_parser(
        "channels",
        help="load location groups and channels from a file, or list them",
        description="Location groups and channels, through a server. FILE is JSON:"
        ' {"groups": [...], "channels": [...]}, with the API\'s field names; groups are'
        " written first. Exit status 0 when done, 1 when the server refuses (nothing of"
        " that call is written), 2 on a usage error or a bad file (nothing is sent).",
    )
    actions = channels.add_subparsers(dest="channels_command", required=True)
    load = actions.add_parser("load", help="create or replace the groups and channels of FILE")
    load.add_argument("file", type=Path, metavar="FILE")
    load.set_defaults(run=_load)
    listing = actions.add_parser("list", help="every group and channel the key may see")
    listing.set_defaults(run=_list)
    for action, command in ((load, "channels load"), (listing, "channels list")):
        action.add_argument("--target", required=True, metavar="HOST:PORT", help="the server")
        action.add_argument(
            "--api-key",
            default=os.environ.get("OMNISTOCK_API_KEY"),
            help=f"the API key, made with `omnistock keys create NAME {key_recipe(command)}`"
            " [$OMNISTOCK_API_KEY]",
        )
