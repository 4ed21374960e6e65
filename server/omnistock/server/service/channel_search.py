"""SearchNearby and GetFulfillmentOptions through a channel.

A channel search lists only the channel group's stores (that do pickup, or receive
ship-to-store), answers each line with the store's channel ATS (its ATS less the
channel's protection there), takes the ship option from the group's locations that
ship, and, in a channel that sells incoming, says from when a short line can be had
from the incoming due at that location ("available from").

Bounded work: it runs on a database thread (never the event loop), walks the locations
within the radius nearest first and stops at the limit (so it reads at most the
locations within the radius), answers the group's ship-from locations once each, and
reads incoming supply in one query per kind of row, for the listed locations only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from omnistock.server.domain.channel_holds import incoming_counts_until, local_today
from omnistock.server.domain.channel_options import incoming_ship_to_store
from omnistock.server.domain.channels import (
    ChannelMethod,
    ChannelView,
    Incoming,
    available_from,
    channel_ats,
    counting_incoming,
    serves,
)
from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.fulfillment import (
    CartLine,
    Method,
    Option,
    ShipSupply,
    StoreSupply,
    can_supply,
    rank,
)
from omnistock.server.domain.fulfillment import fulfillment_options as build_options
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.domain.stock import (
    Exposure,
    StockRecord,
    available_to_sell,
    is_stale,
    reserved_at,
    view_missing,
    view_record,
)
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.readmodel.stock import SkuRecords
from omnistock.server.service.answers import (
    LineAnswer,
    NearbyAnswer,
    SearchResult,
    ShipAnswer,
    StoreAnswer,
    records_at,
)
from omnistock.server.service.nearby import ShoppingService
from omnistock.server.service.origins import Origin
from omnistock.server.store.channel_supply import ChannelSupplyReader
from omnistock.server.store.channels import ChannelRepository


class ChannelShopping:
    def __init__(
        self,
        shopping: ShoppingService,
        channels: ChannelRepository,
        supply: ChannelSupplyReader,
    ) -> None:
        self._shopping = shopping
        self._channels = channels
        self._supply = supply

    def view(self, channel_id: str) -> ChannelView:
        view = self._channels.view(channel_id)
        if view is None:
            raise NotFound("channel", [channel_id], reason="CHANNEL_NOT_FOUND")
        return view

    def search_nearby(
        self,
        channel_id: str,
        lines: Sequence[CartLine],
        origin: Origin,
        *,
        radius_km: float,
        limit: int,
        open_now: bool,
        method: Method,
        require_all: bool,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> SearchResult:
        """The ``limit`` nearest stores of the channel's group within the radius that do
        ``method`` (PICKUP, or SHIP_TO_STORE: receive parcels) and have a line (or every
        line), with channel quantities; and the ship option from the group's shippers."""
        view = self.view(channel_id)
        members = _members(view, visible)
        now = self._shopping.now()
        point = self._shopping.resolve(origin, visible)
        records = self._shopping.records([line.sku for line in lines], visible=members)
        needed = len(lines) if require_all else 1
        found: list[NearbyAnswer] = []
        for near in self._shopping.locations_near(point, radius_km):
            location = near.item
            if location.id not in members or not _receives(location, method):
                continue
            answers = self._lines(
                view, location, lines, records_at(records, lines, location), now, exposure
            )
            presentation = self._shopping.presentation(location, now)
            if sum(a.fulfillable for a in answers) < needed:
                continue
            if open_now and not presentation.open_now:
                continue
            found.append(
                NearbyAnswer(StoreAnswer(location, tuple(answers), presentation), near.distance_km)
            )
            if len(found) == limit:
                break
        ship = self._ship(view, members, lines, records, now, exposure)
        if view.channel.sells_incoming:
            found, ship = self._with_available_from(view, found, ship, lines, now)
        return SearchResult(point, found, ship)

    def fulfillment_options(
        self,
        channel_id: str,
        lines: Sequence[CartLine],
        origin: Origin,
        *,
        radius_km: float,
        visible: frozenset[str] | None = None,
    ) -> tuple[tuple[float, float], list[Option]]:
        """The ranked ways to get the cart through the channel: its group's stores within
        the radius and its shippers, on channel quantities."""
        view = self.view(channel_id)
        members = _members(view, visible)
        now = self._shopping.now()
        point = self._shopping.resolve(origin, visible)
        records = self._shopping.records([line.sku for line in lines], visible=members)
        stores = [
            StoreSupply(
                near.item,
                near.distance_km,
                tuple(
                    a.fulfillable
                    for a in self._lines(
                        view,
                        near.item,
                        lines,
                        records_at(records, lines, near.item),
                        now,
                        Exposure.EXACT,
                    )
                ),
            )
            for near in self._shopping.locations_near(point, radius_km)
            if near.item.kind is LocationKind.STORE and near.item.id in members
        ]
        ship = self._ship(view, members, lines, records, now, Exposure.EXACT)
        shipping = (
            None
            if ship is None
            else ShipSupply(ship.location, tuple(a.fulfillable for a in ship.lines), ship.delivery)
        )
        options = build_options(lines, stores, shipping, now)
        if view.channel.sells_incoming:
            options = self._with_incoming_transfers(view, options, stores, lines, records, now)
        return point, options

    def _with_incoming_transfers(
        self,
        view: ChannelView,
        options: list[Option],
        stores: Sequence[StoreSupply],
        lines: Sequence[CartLine],
        records: dict[str, SkuRecords],
        now: datetime,
    ) -> list[Option]:
        """The SHIP_TO_STORE option, when an incoming transfer to a store within the radius
        makes it ready before the one a shipment gives (domain.channel_options)."""
        receiving = [s for s in stores if s.location.capabilities.ship_to_store]
        rows = self._supply.read(
            [line.sku for line in lines], {s.location.id for s in receiving}, to_micros(now)
        )
        offers = []
        for supply in receiving:
            location = supply.location
            ats, due, held = {}, {}, {}
            for line in lines:
                pair = (line.sku, location.id)
                record = records[line.sku].records.get(location.id)
                ats[line.sku] = 0 if record is None else _channel_ats(view, location, record, now)
                due[line.sku] = _due(rows.incoming.get(pair, ()), location, now)
                held[line.sku] = rows.incoming_held.get(pair, 0)
            offer = incoming_ship_to_store(
                location, supply.distance_km, lines, ats, due, held, now, local_today(location, now)
            )
            if offer is not None:
                offers.append(offer)
        if not offers:
            return options
        best = min(offers, key=Option.sort_key)
        kept = [o for o in options if o.method is not Method.SHIP_TO_STORE]
        shipped = [o for o in options if o.method is Method.SHIP_TO_STORE]
        return rank([*kept, min([*shipped, best], key=Option.sort_key)])

    def _lines(
        self,
        view: ChannelView,
        location: Location,
        lines: Sequence[CartLine],
        held: Sequence[StockRecord | None],
        now: datetime,
        exposure: Exposure,
    ) -> list[LineAnswer]:
        """Each line at one location, on its channel ATS: the record read with the
        channel's protection there added to its safety stock."""
        policy = location.stock_policy
        answers = []
        for line, record in zip(lines, held, strict=True):
            if record is None:
                missing = view_missing(location.id, line.sku, policy, exposure=exposure)
                answers.append(LineAnswer(line, missing, False))
                continue
            protected = _protected(view, location, record)
            shown = view_record(protected, policy, now=now, exposure=exposure)
            ats = _channel_ats(view, location, record, now)
            answers.append(LineAnswer(line, shown, can_supply(shown, line.quantity, ats)))
        return answers

    def _ship(
        self,
        view: ChannelView,
        members: frozenset[str],
        lines: Sequence[CartLine],
        records: dict[str, SkuRecords],
        now: datetime,
        exposure: Exposure,
    ) -> ShipAnswer | None:
        shippers = frozenset(
            location.id
            for location in self._shopping.shippers()
            if location.id in members and serves(location, ChannelMethod.SHIP)
        )
        return self._shopping.ship_answer(
            lines,
            records,
            now,
            exposure,
            shippers,
            lambda location, held: self._lines(view, location, lines, held, now, exposure),
        )

    def _with_available_from(
        self,
        view: ChannelView,
        found: list[NearbyAnswer],
        ship: ShipAnswer | None,
        lines: Sequence[CartLine],
        now: datetime,
    ) -> tuple[list[NearbyAnswer], ShipAnswer | None]:
        """Each short line's "available from" at its location, from the incoming due
        there (one read for every listed location)."""
        at = [a.location for a in found] + ([ship.location] if ship is not None else [])
        records = self._shopping.records([line.sku for line in lines])
        rows = self._supply.read(
            [line.sku for line in lines], {loc.id for loc in at}, to_micros(now)
        )

        def dated(location: Location, answers: Sequence[LineAnswer]) -> tuple[LineAnswer, ...]:
            today = local_today(location, now)
            out = []
            for answer in answers:
                if answer.fulfillable:
                    out.append(answer)
                    continue
                pair = (answer.line.sku, location.id)
                due = _due(rows.incoming.get(pair, ()), location, now)
                record = records[answer.line.sku].records.get(location.id)
                have = 0 if record is None else _channel_ats(view, location, record, now)
                since: date | None = available_from(
                    have, due, rows.incoming_held.get(pair, 0), answer.line.quantity, today
                )
                out.append(replace(answer, available_from=since))
            return tuple(out)

        listed = [
            NearbyAnswer(replace(a.store, lines=dated(a.location, a.lines)), a.distance_km)
            for a in found
        ]
        if ship is not None:
            ship = replace(ship, lines=list(dated(ship.location, ship.lines)))
        return listed, ship


def _protected(view: ChannelView, location: Location, record: StockRecord) -> StockRecord:
    """The record as the channel sees it: its protection there added to the safety stock."""
    policy = location.stock_policy
    protection = max(0, view.channel.protection_at(location.id))
    return record._replace(safety_stock=policy.safety_stock_for(record.safety_stock) + protection)


def _channel_ats(view: ChannelView, location: Location, record: StockRecord, now: datetime) -> int:
    """Channel ATS of a fresh record: ATS less the channel's protection (0 when stale)."""
    policy = location.stock_policy
    if is_stale(now - record.source_updated_at, policy.freshness_budget):
        return 0
    units = available_to_sell(
        record.on_hand, reserved_at(record, now), policy.safety_stock_for(record.safety_stock)
    )
    return channel_ats(units, view.channel.protection_at(location.id))


def _due(lines: Sequence[tuple[date, int]], location: Location, now: datetime) -> list[Incoming]:
    """The incoming (expected date, quantity) lines at a location that still count."""
    return counting_incoming(
        [Incoming(expected, q, incoming_counts_until(expected, location)) for expected, q in lines],
        now,
    )


def _members(view: ChannelView, visible: frozenset[str] | None) -> frozenset[str]:
    return view.location_ids if visible is None else view.location_ids & visible


def _receives(location: Location, method: Method) -> bool:
    """A store of the group that does the search's method: pickup (as the channel's
    PICKUP has it), or receiving ship-to-store parcels."""
    if method is Method.SHIP_TO_STORE:
        return (
            location.active
            and location.kind is LocationKind.STORE
            and location.capabilities.ship_to_store
        )
    return serves(location, ChannelMethod.PICKUP)
