"""Where a network hold goes, and how much of each line it takes from incoming supply.

The placement rule itself is ``channels.place_network_hold``; this module feeds it:

- First every location of the channel that serves the method is weighed on its channel
  ATS alone (ATS less protection). A location that covers every line from it takes the
  hold from stock.
- Only when none can, and the channel sells incoming, a location may cover a line with
  its channel ATS plus the incoming still counting there less the incoming already held
  there (a pre-order or back-order). The line then takes what channel ATS it can from
  stock and the rest from incoming (protection never applies to incoming).
- Incoming counts at a location until the end of its expected date there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.channels import ChannelMethod, HoldCandidate, rank_network_hold
from omnistock.server.domain.fulfillment import CartLine
from omnistock.server.domain.locations import Location

# The most locations one hold (or move) tries inside its write transaction, best first:
# the ones the read before it found able, re-checked where it counts.
MAX_TRIED_LOCATIONS = 20


@dataclass(frozen=True, slots=True)
class LocationSupply:
    """What one location of a channel can give a hold, per sku of the hold."""

    location: Location
    channel_ats: Mapping[str, int]
    # Incoming still counting at the location less the incoming held there (at least 0).
    free_incoming: Mapping[str, int] = field(default_factory=dict)
    distance_km: float | None = None


@dataclass(frozen=True, slots=True)
class HoldPlan:
    """One location to try, and the part of each line it takes from incoming (the rest
    from stock)."""

    location_id: str
    from_incoming: Mapping[str, int] = field(default_factory=dict)


def local_today(location: Location, now: datetime) -> date:
    """The calendar date at the location at ``now``."""
    return now.astimezone(ZoneInfo(location.time_zone)).date()


def incoming_counts_until(expected: date, location: Location) -> datetime:
    """Incoming due on ``expected`` counts until the start of the next day at the location."""
    return datetime.combine(expected + timedelta(days=1), time(0), ZoneInfo(location.time_zone))


def plan_network_hold(
    supplies: Sequence[LocationSupply],
    lines: Sequence[CartLine],
    method: ChannelMethod,
    *,
    sells_incoming: bool,
    limit: int = MAX_TRIED_LOCATIONS,
) -> list[HoldPlan]:
    """The locations to try for a hold, best first by the placement rule: those that cover
    every line from channel ATS; with none, and a channel that sells incoming, those that
    cover it with incoming too. Empty when no location can."""
    plans = [HoldPlan(c.location.id) for c in _ranked(supplies, lines, method, limit, False)]
    if plans or not sells_incoming:
        return plans
    by_id = {s.location.id: s for s in supplies}
    return [
        HoldPlan(c.location.id, incoming_parts(by_id[c.location.id], lines))
        for c in _ranked(supplies, lines, method, limit, True)
    ]


def incoming_parts(supply: LocationSupply, lines: Sequence[CartLine]) -> dict[str, int]:
    """Per line, what the location's channel ATS cannot give: the part taken from incoming."""
    parts = {line.sku: line.quantity - supply.channel_ats.get(line.sku, 0) for line in lines}
    return {sku: part for sku, part in parts.items() if part > 0}


def _ranked(
    supplies: Sequence[LocationSupply],
    lines: Sequence[CartLine],
    method: ChannelMethod,
    limit: int,
    with_incoming: bool,
) -> list[HoldCandidate]:
    candidates = [
        HoldCandidate(
            s.location,
            {
                line.sku: s.channel_ats.get(line.sku, 0)
                + (max(0, s.free_incoming.get(line.sku, 0)) if with_incoming else 0)
                for line in lines
            },
            s.distance_km,
        )
        for s in supplies
    ]
    return rank_network_hold(candidates, lines, method, limit=limit)
