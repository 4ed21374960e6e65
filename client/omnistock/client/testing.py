"""Test your own code against omnistock without a network.

``LocalServer`` runs a real omnistock server in your test process (on a free local port,
a temporary SQLite file, keys not checked), seeded with a small store of three shops and
a warehouse, and a ``web`` channel that sells from all four. Point a Client or an AsyncClient at ``server.target``::

    from omnistock.client import Client
    from omnistock.client.testing import LocalServer, SKUS, STORES

    def test_my_kiosk_shows_stock():
        with LocalServer() as server, Client(server.target) as client:
            assert my_kiosk(client).lines[0].sku == SKUS[0]

It needs the omnistock server package beside the SDK (``pip install omnistock``, or this
repository's root); the SDK alone does not, and importing this module without it raises
an ImportError that says so.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from omnistock.client._client import Client
from omnistock.client._requests import timestamp
from omnistock.client._types import (
    Capabilities,
    LatLng,
    Location,
    StockUpdate,
    WeeklyHours,
)
from omnistock.v1 import location_pb2

try:
    from omnistock.server.config import ServerConfig
    from omnistock.server.testing import InProcessServer
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "omnistock.client.testing runs a real omnistock server in your process: install the "
        "server package beside the SDK (pip install omnistock)"
    ) from error

# The seeded store: (id, name, latitude, longitude) in the Netherlands.
STORES = (
    ("NL-AMS-01", "Amsterdam Kalverstraat", 52.3702, 4.8910),
    ("NL-UTR-01", "Utrecht Centraal", 52.0894, 5.1101),
    ("NL-RTM-01", "Rotterdam Lijnbaan", 51.9203, 4.4747),
)
WAREHOUSE = "NL-WH-01"
SKUS = ("PHONE-1", "CASE-1", "CHARGER-1")
# on_hand per store and sku, in the order of STORES and SKUS; the warehouse has 100 of each.
STOCK = ((5, 12, 0), (1, 3, 8), (0, 0, 2))
# The seeded channel: the web shop sells from every location above, each store keeping
# WEB_PROTECTION units of each sku back for its walk-in shoppers.
WEB_CHANNEL = "web"
WEB_PROTECTION = 1


def seed(client: Client, *, now: datetime | None = None) -> None:
    """Put the seeded store into a server (through the API)."""
    now = now or datetime.now(UTC)
    hours = [
        WeeklyHours(day=day, opens="09:00", closes="21:00")  # type: ignore[arg-type]
        for day in range(1, 8)
    ]
    locations = [
        Location(
            id=store_id, kind=location_pb2.LOCATION_KIND_STORE, name=name, country="NL",
            position=LatLng(latitude=lat, longitude=lon), time_zone="Europe/Amsterdam",
            weekly_hours=hours, capabilities=Capabilities(pickup=True, ship_to_store=True),
            pickup_lead_time_minutes=30, active=True,
        )
        for store_id, name, lat, lon in STORES
    ] + [
        Location(
            id=WAREHOUSE, kind=location_pb2.LOCATION_KIND_WAREHOUSE, name="Warehouse Tilburg", country="NL",
            position=LatLng(latitude=51.56, longitude=5.09), time_zone="Europe/Amsterdam",
            capabilities=Capabilities(ship_from=True), shipping_days=1, active=True,
        )
    ]  # fmt: skip
    client.upsert_locations(locations)
    at = timestamp(now - timedelta(minutes=1))
    updates = [
        StockUpdate(location_id=store_id, sku=sku, on_hand=on_hand, source_updated_at=at)
        for (store_id, *_), row in zip(STORES, STOCK, strict=True)
        for sku, on_hand in zip(SKUS, row, strict=True)
    ] + [
        StockUpdate(location_id=WAREHOUSE, sku=sku, on_hand=100, source_updated_at=at)
        for sku in SKUS
    ]
    client.apply_stock_updates(updates)


class LocalServer:
    """A seeded omnistock server in this process; a context manager."""

    def __init__(self, *, seeded: bool = True, database_url: str | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if database_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="omnistock-test-")
            database_url = f"sqlite:///{Path(self._tmp.name) / 'omnistock.db'}"
        self._server = InProcessServer(
            ServerConfig(listen="127.0.0.1:0", database_url=database_url, insecure=True)
        )
        self._seeded = seeded

    @property
    def target(self) -> str:
        """host:port to give a Client or an AsyncClient."""
        return self._server.target

    def client(self, **options: Any) -> Client:
        return Client(self.target, **options)

    def __enter__(self) -> LocalServer:
        self._server.start()
        if self._seeded:
            with self.client() as client:
                seed(client)
            self._seed_channel()
        return self

    def _seed_channel(self) -> None:
        """The ``web`` channel over every seeded location (see WEB_CHANNEL)."""
        self._server.add_channel(
            WEB_CHANNEL,
            "Web shop",
            [store_id for store_id, *_ in STORES] + [WAREHOUSE],
            protection={store_id: WEB_PROTECTION for store_id, *_ in STORES},
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
