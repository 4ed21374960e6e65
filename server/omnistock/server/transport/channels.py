"""ChannelService: location groups and channels, proto in, ChannelAdmin call, proto out.

The proto's conventions are applied here: ``low_threshold`` 0 means the default (3),
``methods`` empty means both, and a list that names an id twice (locations, member
groups, methods, protections) is INVALID_ARGUMENT on the repeated entry. The rules about
what may be stored (known locations, no group that contains itself, protections inside
the channel's group) are ChannelAdmin's. Reads hand the caller's principal to the
service, which shows only what it may see (transport.scope's table).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from omnistock.server.domain.channels import Channel, ChannelMethod, LocationGroup
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id
from omnistock.server.domain.stock import DEFAULT_LOW_THRESHOLD
from omnistock.server.service.channels import ChannelAdmin, ShownGroup
from omnistock.server.transport.auth import audit_note, principal
from omnistock.server.transport.blocking import BlockingRunner
from omnistock.server.transport.convert import datetime_to_timestamp
from omnistock.server.transport.pages import PageTokens
from omnistock.server.transport.servicers import check_unique
from omnistock.v1 import channel_pb2, channel_pb2_grpc

_METHODS = {
    channel_pb2.CHANNEL_METHOD_SHIP: ChannelMethod.SHIP,
    channel_pb2.CHANNEL_METHOD_PICKUP: ChannelMethod.PICKUP,
}
_METHODS_TO_PROTO = {method: value for value, method in _METHODS.items()}


def _check_ids(v: Violations, values: Any, field_path: str) -> None:
    for i, value in enumerate(values):
        check_id(v, value, f"{field_path}[{i}]")
    check_unique(v, list(values), field_path)


def group_from_proto(v: Violations, msg: channel_pb2.LocationGroup, prefix: str) -> LocationGroup:
    _check_ids(v, msg.location_ids, f"{prefix}location_ids")
    _check_ids(v, msg.member_group_ids, f"{prefix}member_group_ids")
    return LocationGroup(
        msg.group_id,
        msg.display_name,
        frozenset(msg.location_ids),
        frozenset(msg.member_group_ids),
    )


def channel_from_proto(v: Violations, msg: channel_pb2.Channel, prefix: str) -> Channel:
    methods: list[ChannelMethod] = []
    for i, value in enumerate(msg.methods):
        method = _METHODS.get(value)
        if method is None:
            v.add(f"{prefix}methods[{i}]", "must be SHIP or PICKUP")
        elif method in methods:
            v.add(f"{prefix}methods[{i}]", f"repeats {method.name}")
        else:
            methods.append(method)
    protection: dict[str, int] = {}
    for i, entry in enumerate(msg.protections):
        field = f"{prefix}protections[{i}].location_id"
        check_id(v, entry.location_id, field)
        if entry.location_id in protection:
            v.add(field, f"repeats {entry.location_id!r}: at most one protection per location")
        protection[entry.location_id] = entry.units
    return Channel(
        msg.channel_id,
        msg.display_name,
        msg.group_id,
        protection=protection,
        default_protection=msg.default_protection,
        sells_incoming=msg.sells_incoming,
        low_threshold=msg.low_threshold or DEFAULT_LOW_THRESHOLD,
        methods=frozenset(methods or ChannelMethod),
    )


def _time(value: Any) -> Timestamp | None:
    return None if value is None else datetime_to_timestamp(value)


def group_to_proto(group: LocationGroup, resolved: int) -> channel_pb2.LocationGroup:
    return channel_pb2.LocationGroup(
        group_id=group.id,
        display_name=group.name,
        location_ids=sorted(group.location_ids),
        member_group_ids=sorted(group.member_group_ids),
        resolved_location_count=resolved,
        update_time=_time(group.updated_at),
    )


def shown_group_to_proto(shown: ShownGroup) -> channel_pb2.LocationGroup:
    return group_to_proto(shown.group, shown.resolved_location_count)


def channel_to_proto(channel: Channel) -> channel_pb2.Channel:
    return channel_pb2.Channel(
        channel_id=channel.id,
        display_name=channel.name,
        group_id=channel.group_id,
        methods=sorted(_METHODS_TO_PROTO[m] for m in channel.methods),
        default_protection=channel.default_protection,
        protections=[
            channel_pb2.LocationProtection(location_id=location_id, units=units)
            for location_id, units in sorted(channel.protection.items())
        ],
        sells_incoming=channel.sells_incoming,
        low_threshold=channel.low_threshold,
        update_time=_time(channel.updated_at),
    )


class ChannelServicer(channel_pb2_grpc.ChannelServiceServicer):
    def __init__(self, service: ChannelAdmin, runner: BlockingRunner, pages: PageTokens) -> None:
        self._service = service
        self._runner = runner
        self._pages = pages

    async def UpsertLocationGroups(
        self,
        request: channel_pb2.UpsertLocationGroupsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> channel_pb2.UpsertLocationGroupsResponse:
        v = Violations()
        groups = [group_from_proto(v, g, f"groups[{i}].") for i, g in enumerate(request.groups)]
        saved = await self._runner.write(
            self._service.upsert_groups,
            groups,
            principal(),
            found=v,
            noted=lambda saved: audit_note(groups=[s.group.id for s in saved]),
        )
        return channel_pb2.UpsertLocationGroupsResponse(
            groups=[shown_group_to_proto(s) for s in saved]
        )

    async def GetLocationGroup(
        self, request: channel_pb2.GetLocationGroupRequest, context: aio.ServicerContext[Any, Any]
    ) -> channel_pb2.GetLocationGroupResponse:
        v = Violations()
        check_id(v, request.group_id, "group_id")
        v.raise_if_any()
        shown = await self._runner.run(self._service.group, request.group_id, principal())
        return channel_pb2.GetLocationGroupResponse(group=shown_group_to_proto(shown))

    async def ListLocationGroups(
        self,
        request: channel_pb2.ListLocationGroupsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> channel_pb2.ListLocationGroupsResponse:
        v = Violations()
        paging = self._pages.read(v, request.page_size, request.page_token, "ListLocationGroups")
        v.raise_if_any()
        page = await self._runner.run(
            self._service.group_page, principal(), after_id=paging.after, limit=paging.size + 1
        )
        more = len(page) > paging.size
        page = page[: paging.size]
        return channel_pb2.ListLocationGroupsResponse(
            groups=[shown_group_to_proto(s) for s in page],
            next_page_token=self._pages.next_token(paging, page[-1].group.id if more else None),
        )

    async def UpdateLocationGroupMembers(
        self,
        request: channel_pb2.UpdateLocationGroupMembersRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> channel_pb2.UpdateLocationGroupMembersResponse:
        v = Violations()
        for name in (
            "add_location_ids",
            "remove_location_ids",
            "add_group_ids",
            "remove_group_ids",
        ):
            _check_ids(v, getattr(request, name), name)
        v.raise_if_any()
        shown = await self._runner.write(
            self._service.change_members,
            request.group_id,
            add=list(request.add_location_ids),
            remove=list(request.remove_location_ids),
            add_groups=list(request.add_group_ids),
            remove_groups=list(request.remove_group_ids),
            who=principal(),
            noted=lambda shown: audit_note(
                group=shown.group.id,
                added=[*request.add_location_ids, *request.add_group_ids],
                removed=[*request.remove_location_ids, *request.remove_group_ids],
            ),
        )
        return channel_pb2.UpdateLocationGroupMembersResponse(group=shown_group_to_proto(shown))

    async def UpsertChannels(
        self, request: channel_pb2.UpsertChannelsRequest, context: aio.ServicerContext[Any, Any]
    ) -> channel_pb2.UpsertChannelsResponse:
        v = Violations()
        channels = [
            channel_from_proto(v, c, f"channels[{i}].") for i, c in enumerate(request.channels)
        ]
        principal().require_channels(c.id for c in channels)
        saved = await self._runner.write(
            self._service.upsert_channels,
            channels,
            found=v,
            noted=lambda saved: audit_note(channels=[c.id for c in saved]),
        )
        return channel_pb2.UpsertChannelsResponse(channels=[channel_to_proto(c) for c in saved])

    async def GetChannel(
        self, request: channel_pb2.GetChannelRequest, context: aio.ServicerContext[Any, Any]
    ) -> channel_pb2.GetChannelResponse:
        v = Violations()
        check_id(v, request.channel_id, "channel_id")
        v.raise_if_any()
        channel = await self._runner.run(self._service.channel, request.channel_id, principal())
        return channel_pb2.GetChannelResponse(channel=channel_to_proto(channel))

    async def ListChannels(
        self, request: channel_pb2.ListChannelsRequest, context: aio.ServicerContext[Any, Any]
    ) -> channel_pb2.ListChannelsResponse:
        v = Violations()
        paging = self._pages.read(v, request.page_size, request.page_token, "ListChannels")
        v.raise_if_any()
        page = await self._runner.run(
            self._service.channel_page, principal(), after_id=paging.after, limit=paging.size + 1
        )
        more = len(page) > paging.size
        page = page[: paging.size]
        return channel_pb2.ListChannelsResponse(
            channels=[channel_to_proto(c) for c in page],
            next_page_token=self._pages.next_token(paging, page[-1].id if more else None),
        )
