"""Ship-to-store from incoming supply: in a channel that sells incoming, a store can
offer the cart for pickup once an incoming transfer to it lands.

Each line is ready on its "available from" date at the store (domain.channels): the
store's channel ATS plus the incoming due there by then, less the incoming already
held there, reaches the line's quantity. The option is ready when the last line is, at
the store's first opening on or after the start of that date (its time zone). A store
that has every line now offers no such option (PICKUP does better); one short line with
no date offers none either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from omnistock.server.domain.channels import Incoming, available_from
from omnistock.server.domain.fulfillment import CartLine, Method, Option
from omnistock.server.domain.hours import next_opening_on_or_after
from omnistock.server.domain.locations import Location


def incoming_ship_to_store(
    store: Location,
    distance_km: float,
    lines: Sequence[CartLine],
    channel_ats: Mapping[str, int],
    due: Mapping[str, Sequence[Incoming]],
    held: Mapping[str, int],
    now: datetime,
    today: date,
) -> Option | None:
    """The SHIP_TO_STORE option a store offers from the incoming due at it, or None.
    ``due``: per sku, the incoming that still counts there; ``held``: per sku, the
    incoming holds already take there."""
    if not store.capabilities.ship_to_store:
        return None
    days = []
    for line in lines:
        since = available_from(
            channel_ats.get(line.sku, 0),
            due.get(line.sku, ()),
            held.get(line.sku, 0),
            line.quantity,
            today,
        )
        if since is None:
            return None
        days.append(since)
    if all(channel_ats.get(line.sku, 0) >= line.quantity for line in lines):
        return None
    day = max(days)
    start = max(datetime.combine(day, time(0), ZoneInfo(store.time_zone)), now)
    ready = next_opening_on_or_after(store, start)
    if ready is None:
        return None
    return Option(
        Method.SHIP_TO_STORE,
        ready,
        pickup=store,
        ship_lines=tuple(lines),
        distance_km=distance_km,
        ready_by=ready,
        delivery=day,
    )
