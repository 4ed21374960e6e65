"""Shoppers' answers: nearby stores for a cart, and ranked ways to get it.

Split by concept:

- origins.py: where a search starts (a position, a postal code);
- spatial.py: the grid index of every location and of each sku's holders;
- search.py: SearchNearby's walk over them, from the memory of the minute;
- answers.py: what an answer says of a store, a line and a shipment, and its memo;
- domain.fulfillment: which options a cart has, and how they rank (a pure rule).

Stock comes from one read per sku of all its records (the stock key is sku first, so
that is one range scan), kept in the read model's stock cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.fulfillment import (
    CartLine,
    Method,
    Option,
    ShipSupply,
    StoreSupply,
)
from omnistock.server.domain.fulfillment import fulfillment_options as build_options
from omnistock.server.domain.geo import Nearby, Work
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.domain.stock import Exposure
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.stock import SkuRecords, StockCache
from omnistock.server.service.answers import (
    AnswerMemo,
    LineAnswers,
    Presentation,
    SearchResult,
    ShipAnswer,
    records_at,
    versions_of,
)
from omnistock.server.service.origins import Origin, OriginResolver
from omnistock.server.service.search import NearbySearch
from omnistock.server.service.spatial import SpatialIndex
from omnistock.server.store.postcodes import PostcodeRepository
from omnistock.server.store.stock import StockRepository


class ShoppingService:
    def __init__(
        self,
        stock: StockRepository,
        directory: LocationDirectory,
        postcodes: PostcodeRepository,
        *,
        clock: Callable[[], datetime],
        cache: StockCache | None = None,
    ) -> None:
        self._stock = stock
        self._directory = directory
        self._clock = clock
        self._cache = cache or StockCache(maxsize=0)
        self._origins = OriginResolver(directory, postcodes)
        self._spatial = SpatialIndex(directory)
        self._answers = AnswerMemo(directory, lambda: self._cache.generation)
        self._search = NearbySearch(
            self._spatial,
            self._answers,
            clock=clock,
            directory_generation=lambda: directory.generation,
        )

    def now(self) -> datetime:
        return self._clock()

    def measure_walks(self) -> None:
        """Count what each search's walk reads from now on (see ``last_walk``)."""
        self._search.measure_work = True

    @property
    def last_walk(self) -> Work:
        """What the last search's walk read (cells, candidates), once measure_walks."""
        return self._search.last_walk

    def require_locations(self, location_ids: Sequence[str]) -> None:
        """NOT_FOUND unless every id names a location."""
        self._directory.require(dict.fromkeys(location_ids))

    def nearest_stores(
        self,
        origin: Origin,
        radius_km: float,
        limit: int,
        *,
        visible: frozenset[str] | None = None,
    ) -> list[str]:
        """The ids of the ``limit`` active stores nearest ``origin`` within the radius, of
        those ``visible`` (None: all): the scope applies before the limit."""
        point = self.resolve(origin, visible)
        stores = []
        for near in self._spatial.locations().nearest_first(point[0], point[1], radius_km):
            if near.item.kind is LocationKind.STORE and (
                visible is None or near.item.id in visible
            ):
                stores.append(near.item.id)
                if len(stores) == limit:
                    break
        return stores

    def resolve(self, origin: Origin, visible: frozenset[str] | None = None) -> tuple[float, float]:
        """A point for the origin (see OriginResolver.resolve); may read the database."""
        return self._origins.resolve(origin, visible)

    def records(
        self, skus: Sequence[str], *, visible: frozenset[str] | None = None
    ) -> dict[str, SkuRecords]:
        """Every record of each sku, read when not cached; NOT_FOUND for a sku no location
        ``visible`` (a caller's scope; None: all) has reported."""
        result = {}
        for sku in skus:
            cached = self._cache.get_sku(sku)
            result[sku] = self.read_sku(sku) if cached is None else cached
        self.check_reported(result, visible)
        return result

    def read_sku(self, sku: str) -> SkuRecords:
        """Every record of ``sku`` from the database, kept in the cache."""
        token = self._cache.sku_token(sku)
        read = {r.location_id: r for r in self._stock.records_for_sku(sku, None)}
        return self._cache.fill_sku(sku, read, token=token)

    def check_reported(
        self, records: dict[str, SkuRecords], visible: frozenset[str] | None
    ) -> None:
        """NOT_FOUND for a sku that no location ``visible`` (None: all) has reported."""
        unknown = [
            sku
            for sku, of_sku in records.items()
            if not of_sku.records or (visible is not None and visible.isdisjoint(of_sku.records))
        ]
        if unknown:
            raise NotFound("sku", unknown, reason="SKU_NOT_FOUND")

    def locations_near(
        self, point: tuple[float, float], radius_km: float
    ) -> Iterator[Nearby[Location]]:
        """Every active location within the radius, nearest first, read lazily."""
        return self._spatial.locations().nearest_first(point[0], point[1], radius_km)

    def shippers(self) -> list[Location]:
        """The active locations that ship."""
        return self._directory.shippers()

    def ship_answer(
        self,
        lines: Sequence[CartLine],
        records: dict[str, SkuRecords],
        now: datetime,
        exposure: Exposure,
        visible: frozenset[str] | None,
        line_answers: LineAnswers,
    ) -> ShipAnswer | None:
        """The best ship answer of the shippers ``visible``, lines answered by
        ``line_answers`` (see AnswerMemo.ship_answer)."""
        return self._answers.ship_answer(lines, records, now, exposure, visible, line_answers)[0]

    def presentation(self, location: Location, now: datetime) -> Presentation:
        """Today's hours, open now and ready-by (see AnswerMemo.presentation)."""
        return self._answers.presentation(location, now)

    # -- SearchNearby

    async def search_nearby(
        self,
        lines: Sequence[CartLine],
        point: tuple[float, float],
        records: dict[str, SkuRecords],
        *,
        radius_km: float,
        limit: int,
        open_now: bool,
        method: Method,
        require_all: bool,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> SearchResult:
        """The ``limit`` nearest stores to ``point`` within ``radius_km`` that serve
        ``method`` and have at least one line (``require_all``: every line), nearest
        first, from ``records`` (every record of each line's sku); ``visible``: only those
        locations (a caller's scope), None for all. Memory only (see NearbySearch)."""
        self.check_reported(records, visible)
        return await self._search.search_nearby(
            lines,
            point,
            records,
            radius_km=radius_km,
            limit=limit,
            open_now=open_now,
            method=method,
            require_all=require_all,
            exposure=exposure,
            visible=visible,
        )

    # -- GetFulfillmentOptions

    def fulfillment_options(
        self,
        lines: Sequence[CartLine],
        origin: Origin,
        *,
        radius_km: float,
        visible: frozenset[str] | None = None,
    ) -> tuple[tuple[float, float], list[Option]]:
        """The ranked ways to get the cart (domain.fulfillment.fulfillment_options), from
        the stores within ``radius_km`` and the shipping locations (of those ``visible``,
        None for all). Reads the database: runs on a database thread."""
        point = self.resolve(origin, visible)
        records = self.records([line.sku for line in lines], visible=visible)
        now = self._clock()
        versions = versions_of(records, lines)
        stores = [
            StoreSupply(
                near.item,
                near.distance_km,
                tuple(
                    answer.fulfillable
                    for answer in self._answers.lines(
                        near.item,
                        lines,
                        records_at(records, lines, near.item),
                        versions,
                        now,
                        Exposure.EXACT,
                    )
                ),
            )
            for near in self._spatial.locations().within(point[0], point[1], radius_km)
            if near.item.kind is LocationKind.STORE and (visible is None or near.item.id in visible)
        ]
        ship = self._answers.ship_answer(lines, records, now, Exposure.EXACT, visible)[0]
        shipping = (
            None
            if ship is None
            else ShipSupply(ship.location, tuple(a.fulfillable for a in ship.lines), ship.delivery)
        )
        return point, build_options(lines, stores, shipping, now)
