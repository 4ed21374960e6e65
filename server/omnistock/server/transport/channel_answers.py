"""Channel answers on the wire: SkuChannel items checked in, ChannelAvailability out."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from cachetools import LRUCache
from omnistock.server.domain.channels import ChannelMethod, available_from_text
from omnistock.server.domain.errors import Violations
from omnistock.server.domain.ids import check_id, is_valid_id
from omnistock.server.domain.security import PermissionDenied, Principal
from omnistock.server.domain.stock import (
    Exposure,
    check_quantity_asked,
    quantity_hint,
    quantity_may_be_asked,
)
from omnistock.server.readmodel.channel_queries import ChannelItem, ChannelReply
from omnistock.server.service.limits import MAX_QUANTITY
from omnistock.server.transport.convert import (
    _EXPOSURE_TO_PROTO,
    STATUS_TO_PROTO,
    datetime_to_timestamp,
)
from omnistock.v1 import availability_pb2, channel_pb2

METHOD_FROM_PROTO = {
    channel_pb2.CHANNEL_METHOD_UNSPECIFIED: ChannelMethod.SHIP,
    channel_pb2.CHANNEL_METHOD_SHIP: ChannelMethod.SHIP,
    channel_pb2.CHANNEL_METHOD_PICKUP: ChannelMethod.PICKUP,
}
METHOD_TO_PROTO = {
    ChannelMethod.SHIP: channel_pb2.CHANNEL_METHOD_SHIP,
    ChannelMethod.PICKUP: channel_pb2.CHANNEL_METHOD_PICKUP,
}


def require_channels(who: Principal, channel_ids: Iterable[str]) -> None:
    """A key bound to channels may ask those; a key scoped to locations and bound to no
    channel may ask none, since a channel's answer sums locations outside its scope
    (PERMISSION_DENIED, CHANNEL_NOT_IN_SCOPE, whether or not the channel exists)."""
    ids = list(channel_ids)
    if who.channels is None and who.locations is not None and ids:
        raise PermissionDenied(
            f"{who.name} is scoped to locations and may not use channel {ids[0]}",
            reason="CHANNEL_NOT_IN_SCOPE",
        )
    who.require_channels(ids)


def parse_item(
    v: Violations,
    prefix: str | Callable[[], str],
    *,
    sku: str,
    channel_id: str,
    method: int,
    quantity: int,
    granted: Exposure,
    banded_max: int,
) -> ChannelItem:
    """One sku x channel item (``prefix``: its field path, "" for the request itself, or
    a function that makes it, called only when the item is wrong: a batch of 1,000 spent
    most of its validation formatting paths). Quantity 0 means 1; a key not granted EXACT
    may ask at most ``banded_max``."""
    parsed = METHOD_FROM_PROTO.get(method)  # type: ignore[call-overload]
    wanted = quantity or 1
    if (
        parsed is not None
        and is_valid_id(sku)
        and is_valid_id(channel_id)
        and 1 <= wanted <= MAX_QUANTITY
        and quantity_may_be_asked(wanted, granted=granted, banded_max=banded_max)
    ):
        return ChannelItem(sku, channel_id, parsed, wanted)
    path = prefix if isinstance(prefix, str) else prefix()
    at = f"{path}." if path else ""
    check_id(v, sku, f"{at}sku")
    check_id(v, channel_id, f"{at}channel_id")
    if parsed is None:
        v.add(f"{at}method", "must be CHANNEL_METHOD_SHIP or CHANNEL_METHOD_PICKUP")
    if not 1 <= wanted <= MAX_QUANTITY:
        v.add(f"{at}quantity", f"must be within [0, {MAX_QUANTITY}] (0 means 1)")
    else:
        check_quantity_asked(v, f"{at}quantity", wanted, granted=granted, banded_max=banded_max)
    return ChannelItem(sku, channel_id, parsed or ChannelMethod.SHIP, wanted)


# GetAvailability's response for each answer given lately, encoded, by the total it came
# from, its quantity and its exposure (ChannelReply.stamp): bytes and tuples of integers,
# which the garbage collector leaves alone. As many as the read model keeps totals, so a
# kept total's answer is encoded once (building it was over half of the handler's time).
ENCODED_ANSWERS = 50_000
_encoded: LRUCache[tuple[int, int, int], bytes] = LRUCache(maxsize=ENCODED_ANSWERS)


def encoded_response(reply: ChannelReply) -> bytes:
    """GetAvailabilityResponse with the reply's answer, serialized (on the event loop
    only: the cache is not locked)."""
    key = (reply.stamp, reply.item.quantity, int(reply.answer.exposure))
    encoded = _encoded.get(key) if reply.stamp else None
    if encoded is None:
        encoded = availability_pb2.GetAvailabilityResponse(
            channel_availability=reply_to_proto(reply)
        ).SerializeToString()
        if reply.stamp:
            _encoded[key] = encoded
    return encoded


# The messages of the answers given most lately, by value: the read model keeps an answer
# until a write or its valid_until, so the same one is presented many times, and an EXACT
# answer's 100-location breakdown costs about 90 us to build (hashing the reply, 1 us).
PRESENTED_ANSWERS = 8_192


@functools.lru_cache(maxsize=PRESENTED_ANSWERS)
def reply_to_proto(reply: ChannelReply) -> channel_pb2.ChannelAvailability:
    """The answer as its message. Shared by every call that gives the same answer:
    callers copy it into their responses (or serialize it) and never change it."""
    item, answer = reply.item, reply.answer
    since = answer.available_from
    message = channel_pb2.ChannelAvailability(
        sku=item.sku,
        channel_id=item.channel_id,
        method=METHOD_TO_PROTO[item.method],
        quantity=item.quantity,
        status=STATUS_TO_PROTO[answer.status],
        exposure=_EXPOSURE_TO_PROTO[answer.exposure],
        available_from="" if since is None else since.isoformat(),
        available_from_text=available_from_text(since, reply.today),
        fulfillable=since is not None and since <= reply.today,
        confidence=answer.confidence,
        as_of=None if answer.as_of is None else datetime_to_timestamp(answer.as_of),
        valid_until=(
            None if answer.valid_until is None else datetime_to_timestamp(answer.valid_until)
        ),
    )
    if answer.exposure is Exposure.EXACT:
        message.available_to_fulfil = answer.available_to_fulfil or 0
        if answer.available_to_order is not None:
            message.available_to_order = answer.available_to_order
        message.contributing_location_count = answer.contributing_count
        message.locations.extend(
            channel_pb2.LocationQuantity(location_id=location_id, quantity=quantity)
            for location_id, quantity in answer.breakdown
        )
    else:
        message.quantity_hint = quantity_hint(answer.status, reply.low_threshold)
    return message
