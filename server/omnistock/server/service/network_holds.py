"""Network holds: a hold placed through a channel, at one location of its group.

The locations are weighed on one read of the line set (store.channel_supply), ranked by
the placement rule (domain.channel_holds, domain.channels), and tried best first inside
one write transaction, where each is re-checked (store.hold_placement): the read only
orders the tries, the conditional writes decide, so a hold never oversells. A move is
the same tries at the channel's other locations, with the old location's units given
back in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from omnistock.server.domain.channel_holds import (
    HoldPlan,
    LocationSupply,
    local_today,
    plan_network_hold,
)
from omnistock.server.domain.channels import (
    Channel,
    ChannelMethod,
    ChannelView,
    channel_ats,
    serves,
)
from omnistock.server.domain.errors import FailedPrecondition, NotFound
from omnistock.server.domain.fulfillment import CartLine
from omnistock.server.domain.geo import distance_km
from omnistock.server.domain.locations import Location
from omnistock.server.domain.reservations import (
    InsufficientStock,
    Reservation,
    ReservationLine,
    ReservationState,
    Shortfall,
    WrongState,
)
from omnistock.server.domain.stock import available_to_sell, is_stale
from omnistock.server.domain.timeutil import from_micros, to_micros
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.service.origins import Origin, OriginResolver
from omnistock.server.store.channel_supply import ChannelSupplyReader, SupplyRows
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.hold_placement import Placement


class MethodNotOffered(FailedPrecondition):
    reason = "METHOD_NOT_OFFERED"

    def __init__(self, channel_id: str, method: ChannelMethod) -> None:
        super().__init__(f"channel {channel_id} does not sell by {method.name}")
        self.violations = [("METHOD_NOT_OFFERED", f"channels/{channel_id}", method.name)]


class NotANetworkHold(FailedPrecondition):
    reason = "NOT_A_NETWORK_HOLD"

    def __init__(self, reservation_id: str) -> None:
        super().__init__(
            f"reservation {reservation_id} was made at a location, not through a channel:"
            " only network holds move"
        )
        self.violations = [("NOT_A_NETWORK_HOLD", f"reservations/{reservation_id}", "no channel")]


class CannotMoveThere(FailedPrecondition):
    reason = "INSUFFICIENT_STOCK"

    def __init__(self, reservation_id: str, target: str) -> None:
        super().__init__(
            f"reservation {reservation_id} cannot move to {target}: no location there serves"
            " its method and can take every line; it stays where it is"
        )
        self.violations = [("INSUFFICIENT_STOCK", f"reservations/{reservation_id}", target)]


class MovedMeanwhile(FailedPrecondition):
    reason = "RESERVATION_CHANGED"

    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"reservation {reservation_id} moved meanwhile; read it and try again")
        self.violations = [("RESERVATION_CHANGED", f"reservations/{reservation_id}", "moved")]


class NetworkPlacer:
    """Reads a channel's supply for a line set and turns the placement rule's ranking into
    the placements a hold tries."""

    def __init__(
        self,
        channels: ChannelRepository,
        supply: ChannelSupplyReader,
        directory: LocationDirectory,
        origins: OriginResolver,
    ) -> None:
        self._channels = channels
        self._supply = supply
        self._directory = directory
        self._origins = origins

    def view(self, channel_id: str, method: ChannelMethod) -> ChannelView:
        """The channel with its group resolved; NOT_FOUND, or METHOD_NOT_OFFERED."""
        view = self._channels.view(channel_id)
        if view is None:
            raise NotFound("channel", [channel_id], reason="CHANNEL_NOT_FOUND")
        if method not in view.channel.methods:
            raise MethodNotOffered(channel_id, method)
        return view

    def point(
        self, origin: Origin | None, visible: frozenset[str] | None
    ) -> tuple[float, float] | None:
        return None if origin is None else self._origins.resolve(origin, visible)

    def placements(
        self,
        view: ChannelView,
        method: ChannelMethod,
        lines: Sequence[ReservationLine],
        now: datetime,
        *,
        visible: frozenset[str] | None,
        point: tuple[float, float] | None = None,
        among: Collection[str] | None = None,
    ) -> list[Placement]:
        """The locations to try, best first (empty: none can cover every line). ``among``
        narrows the candidates (a move's target, or the other locations)."""
        members = self._members(view, method, visible, among)
        cart = [CartLine(line.sku, line.quantity) for line in lines]
        rows = self._supply.read([line.sku for line in lines], members, to_micros(now))
        supplies = [
            _supply(view.channel, location, cart, rows, now, point) for location in members.values()
        ]
        plans = plan_network_hold(
            supplies, cart, method, sells_incoming=view.channel.sells_incoming
        )
        return [_placement(view.channel, members[plan.location_id], plan, now) for plan in plans]

    def refusal(self, view: ChannelView, lines: Sequence[ReservationLine]) -> InsufficientStock:
        """FAILED_PRECONDITION for a hold no location can take: one violation per line,
        never a count (a network hold's refusal reads the same to every caller)."""
        return InsufficientStock(
            f"any one location of channel {view.channel.id}",
            [Shortfall(line.sku, line.quantity, None) for line in lines],
        )

    def _members(
        self,
        view: ChannelView,
        method: ChannelMethod,
        visible: frozenset[str] | None,
        among: Collection[str] | None,
    ) -> dict[str, Location]:
        by_id = self._directory.by_id()
        ids = view.location_ids if among is None else view.location_ids & set(among)
        return {
            location_id: location
            for location_id in ids
            if (location := by_id.get(location_id)) is not None
            and serves(location, method)
            and (visible is None or location_id in visible)
        }


def _supply(
    channel: Channel,
    location: Location,
    cart: Sequence[CartLine],
    rows: SupplyRows,
    now: datetime,
    point: tuple[float, float] | None,
) -> LocationSupply:
    policy = location.stock_policy
    protection = channel.protection_at(location.id)
    ats: dict[str, int] = {}
    free: dict[str, int] = {}
    today = local_today(location, now) if channel.sells_incoming else None
    for line in cart:
        pair = (line.sku, location.id)
        row = rows.stock.get(pair)
        if row is not None and not is_stale(
            now - from_micros(row.source_updated_at_us), policy.freshness_budget
        ):
            units = available_to_sell(
                row.on_hand, row.reserved, policy.safety_stock_for(row.safety_stock)
            )
            ats[line.sku] = channel_ats(units, protection)
        if today is not None:
            counting = sum(q for expected, q in rows.incoming.get(pair, ()) if expected >= today)
            free[line.sku] = counting - rows.incoming_held.get(pair, 0)
    distance = None
    if point is not None:
        distance = distance_km(point[0], point[1], location.latitude, location.longitude)
    return LocationSupply(location, ats, free, distance)


def _placement(channel: Channel, location: Location, plan: HoldPlan, now: datetime) -> Placement:
    policy = location.stock_policy
    return Placement(
        location.id,
        fresh_after_us=to_micros(now - policy.freshness_budget),
        default_safety=policy.safety_stock_for(None),
        protection=channel.protection_at(location.id),
        from_incoming=dict(plan.from_incoming),
        today=local_today(location, now).isoformat(),
    )


def check_movable(reservation: Reservation, now: datetime) -> None:
    """A move needs an active network hold."""
    current = reservation.as_of(now)
    if not current.channel_id:
        raise NotANetworkHold(reservation.id)
    if current.state is not ReservationState.ACTIVE:
        raise WrongState(current, "move", "ACTIVE")
