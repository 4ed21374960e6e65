"""A small network for network-hold tests: stores and warehouses, a channel over them,
stock through the SDK. Groups, channels and incoming lines are written through their
repositories on the server's own database (their RPCs are tested on their own)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from conftest import FixedClock
from factories import store, update, warehouse
from omnistock.client import Capabilities, Client, Exposure, LatLng
from omnistock.server.domain.channels import Channel, ChannelMethod, LocationGroup
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.incoming import IncomingStore, IncomingUpdate
from omnistock.server.testing import InProcessServer

# Amsterdam, Rotterdam and Utrecht, roughly.
AMSTERDAM = (52.37, 4.89)
ROTTERDAM = (51.92, 4.48)
UTRECHT = (52.09, 5.12)


class Shop:
    def __init__(self, server: InProcessServer, client: Client, clock: FixedClock) -> None:
        assert server.server is not None
        self.engine = server.server.engine
        self.client = client
        self.clock = clock
        self._channels = ChannelRepository(self.engine)

    def stores(self, *ids: str, ship: bool = False, at: tuple[float, float] = AMSTERDAM) -> None:
        self.client.upsert_locations(
            [
                store(
                    i,
                    position=LatLng(latitude=at[0], longitude=at[1]),
                    capabilities=Capabilities(pickup=True, ship_to_store=True, ship_from=ship),
                )
                for i in ids
            ]
        )

    def warehouses(self, *ids: str) -> None:
        self.client.upsert_locations([warehouse(i) for i in ids])

    def stock(self, levels: Mapping[tuple[str, str], int]) -> None:
        """(location, sku) -> on_hand, safety stock 0, fresh."""
        at = self.clock() - timedelta(minutes=1)
        self.client.apply_stock_updates(
            [update(loc, sku, q, at, safety_stock=0) for (loc, sku), q in levels.items()]
        )

    def channel(
        self,
        *locations: str,
        channel_id: str = "web",
        protection: Mapping[str, int] | None = None,
        default_protection: int = 0,
        sells_incoming: bool = False,
        methods: frozenset[ChannelMethod] = frozenset({ChannelMethod.SHIP, ChannelMethod.PICKUP}),
    ) -> None:
        now = self.clock()
        self._channels.upsert_groups(
            [LocationGroup(f"{channel_id}-group", "Group", frozenset(locations))], now=now
        )
        self._channels.upsert_channels(
            [
                Channel(
                    channel_id,
                    channel_id,
                    f"{channel_id}-group",
                    protection=dict(protection or {}),
                    default_protection=default_protection,
                    sells_incoming=sells_incoming,
                    methods=methods,
                )
            ],
            now=now,
        )

    def incoming(self, location_id: str, sku: str, line_id: str, quantity: int, due: date) -> None:
        IncomingStore(self.engine).apply(
            [IncomingUpdate(location_id, sku, line_id, quantity, due, to_micros(self.clock()))],
            now_us=to_micros(self.clock()),
        )

    def ats(self, location_id: str, sku: str) -> int:
        (answer,) = self.client.get_availability(sku, [location_id], exposure=Exposure.EXACT)
        return int(answer.available_to_sell)

    def today(self) -> date:
        return self.clock().date()

    def at(self, delta: timedelta) -> datetime:
        return self.clock() + delta
