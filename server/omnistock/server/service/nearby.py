"""Shoppers' answers: nearby stores for a cart, and ranked ways to get it.

Locations come from a grid index over the location directory (rebuilt when the
directory changes); stock comes from one read per sku of all its records (the
stock key is sku first, so that is one range scan), cached per sku.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.fulfillment import (
    CartLine,
    Method,
    Option,
    ShipSupply,
    StoreSupply,
    can_supply,
    delivered_by,
    delivery_date,
)
from omnistock.server.domain.fulfillment import fulfillment_options as build_options
from omnistock.server.domain.geo import (
    GridIndex,
    Work,
    block_key,
    nearest_in_any,
    nearest_in_block,
)
from omnistock.server.domain.hours import DayHours, hours_on, is_open, ready_by
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.domain.stock import (
    AvailabilityView,
    Exposure,
    StockRecord,
    available_to_sell,
    is_stale,
    reserved_at,
    view_missing,
    view_record,
)
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.readmodel.minute import MinuteCache
from omnistock.server.readmodel.stock import SkuRecords, StockCache
from omnistock.server.store.postcodes import PostcodeRepository, normalize_postal_code
from omnistock.server.store.stock import StockRepository

log = logging.getLogger("omnistock.nearby")

# Serials of store and ship answers (StoreAnswer.serial); next() on a count is atomic.
_SERIALS = itertools.count(1)

# The most carts whose store answers are kept each minute, and stores for each cart.
_CARTS = 500
_STORES_A_CART = 200
# The most stores listed in the blocks of cells kept for each cart, each minute.
_BLOCK_STORES_A_CART = 2_000
# The most skus whose holders' grids are kept.
_HOLDER_GRIDS = 10_000


@dataclass(frozen=True, slots=True)
class Origin:
    latitude: float | None = None
    longitude: float | None = None
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class LineAnswer:
    line: CartLine
    view: AvailabilityView
    fulfillable: bool


@dataclass(frozen=True, slots=True)
class Presentation:
    """What a nearby answer says of a location besides its stock, for one minute."""

    minute: datetime
    today: DayHours
    open_now: bool
    ready_by: datetime | None
    # Until when it holds: the next minute, or the instant it was made for (see
    # ShoppingService.presentation).
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class _KeptShip:
    """A cart's ship answer for the minute, and until when it stands with time alone."""

    answer: ShipAnswer | None
    until: datetime


@dataclass(frozen=True, slots=True)
class _KeptLine:
    """A line's answer at a store for the minute, and what it was built from: it stands
    while the record is equal, still fresh (or stale), holds as much, and the directory's
    generation (the location) is the same."""

    record: StockRecord | None
    stale: bool
    holding: int
    directory_generation: int
    answer: LineAnswer


@dataclass(slots=True)
class _HolderGrid:
    """A grid index of one sku's holders, built on a version of its records and a
    generation of the directory."""

    records_version: int
    directory_generation: int
    grid: GridIndex[Location]


@dataclass(frozen=True, slots=True)
class _KeptPresentation:
    directory_generation: int
    presentation: Presentation


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """What a nearby answer says of one store for one cart: each line's answer, and the
    store's presentation. Reused within the minute while the store's records stand.
    ``serial`` names this answer: drawn once, never reused, so a copy made from it (its
    encoded entry) stands while the serial it was made from is the one handed back."""

    location: Location
    lines: tuple[LineAnswer, ...]
    presentation: Presentation
    fulfillable: int = field(init=False)
    serial: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fulfillable", sum(a.fulfillable for a in self.lines))
        object.__setattr__(self, "serial", next(_SERIALS))

    @property
    def has_all(self) -> bool:
        return self.fulfillable == len(self.lines)


@dataclass(slots=True)  # not frozen: made for every store listed, and frozen costs 2x
class NearbyAnswer:
    store: StoreAnswer
    distance_km: float

    @property
    def location(self) -> Location:
        return self.store.location

    @property
    def lines(self) -> tuple[LineAnswer, ...]:
        return self.store.lines

    @property
    def presentation(self) -> Presentation:
        return self.store.presentation

    @property
    def ready_by(self) -> datetime | None:
        return self.store.presentation.ready_by

    @property
    def today(self) -> DayHours:
        return self.store.presentation.today

    @property
    def open_now(self) -> bool:
        return self.store.presentation.open_now

    @property
    def has_all(self) -> bool:
        return self.store.has_all


@dataclass(frozen=True, slots=True)
class ShipAnswer:
    location: Location
    lines: list[LineAnswer]
    delivery: datetime
    serial: int = field(init=False)  # as StoreAnswer.serial

    def __post_init__(self) -> None:
        object.__setattr__(self, "serial", next(_SERIALS))

    @property
    def has_all(self) -> bool:
        return all(line.fulfillable for line in self.lines)


@dataclass(frozen=True, slots=True)
class SearchResult:
    origin: tuple[float, float]
    locations: list[NearbyAnswer]
    ship: ShipAnswer | None


# A block of cells around an origin's cell, and a search's filter: pickup, lines needed,
# open now.
_BlockKey = tuple[tuple[int, int], bool, int, bool]
# Until when a block's answer stands, and its qualifying stores with their unit vectors.
_Block = tuple[datetime, list[StoreAnswer], list[tuple[float, float, float]]]


@dataclass(slots=True)
class _CartAnswers:
    """A cart's store answers of one minute, built on ``records`` (each line's records, of
    the versions ``versions``) and the directory's ``generation``: by location id, until when each
    stands and the answer (at most _STORES_A_CART); and by block of cells and filter,
    the qualifying stores of the block (see ShoppingService._from_block)."""

    skus: tuple[str, ...]
    records: tuple[SkuRecords, ...]
    versions: tuple[int, ...]
    generation: int
    answers: dict[str, tuple[datetime, StoreAnswer]] = field(default_factory=dict)
    blocks: dict[_BlockKey, _Block] = field(default_factory=dict)
    # The stores listed in ``blocks``, at most _BLOCK_STORES_A_CART.
    block_stores: int = 0

    def keep_block(self, key: _BlockKey, block: _Block) -> None:
        replaced = self.blocks.pop(key, None)
        if replaced is not None:
            self.block_stores -= len(replaced[1])
        if self.block_stores + len(block[1]) > _BLOCK_STORES_A_CART:
            self.blocks.clear()  # origins all over the map: start over rather than grow
            self.block_stores = 0
        self.blocks[key] = block
        self.block_stores += len(block[1])


@dataclass(slots=True)  # not frozen: made for every search, and frozen costs 2x
class _Want:
    """One search: what it asks of a store (the cart, pickup (else ship to store), how
    many lines it must have, whether it must be open now), the exposure, where it
    searches from and how far, how many stores, and its moment."""

    lines: Sequence[CartLine]
    pickup: bool
    needed: int
    open_now: bool
    exposure: Exposure
    point: tuple[float, float]
    radius_km: float
    limit: int
    now: datetime


# The longest a search's walk holds the event loop before it lets other calls run.
WALK_SLICE_SECONDS = 0.002


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
        # What the last walk read (cells, candidates), for the work ceiling's tests.
        self.last_walk = Work()
        self._directory = directory
        self._postcodes = postcodes
        self._clock = clock
        self._cache = cache or StockCache(maxsize=0)
        self._index_lock = threading.Lock()
        # By sku: a plain dict, read without the lock (searches read it on the event
        # loop), emptied when full.
        self._holder_grids: dict[str, _HolderGrid] = {}
        self._ship_answers: MinuteCache[tuple[tuple[str, Exposure], int, int], _KeptShip] = (
            MinuteCache(max_entries=10_000)
        )
        # Both kept with the directory generation they were built on: a location changed
        # in the directory is presented and answered afresh within the minute.
        self._presentations: MinuteCache[str, _KeptPresentation] = MinuteCache()
        self._line_answers: MinuteCache[tuple[str, str, int, Exposure], _KeptLine] = MinuteCache()
        # The carts' store answers of the minute (see _CartAnswers), at most _CARTS.
        self._store_answers: MinuteCache[tuple[str, Exposure], _CartAnswers] = MinuteCache(
            max_entries=_CARTS
        )
        self._index: tuple[int, GridIndex[Location]] | None = None

    def now(self) -> datetime:
        return self._clock()

    # -- building blocks

    def _grid(self) -> GridIndex[Location]:
        self._directory.all()  # refreshes the directory when due
        generation = self._directory.generation
        index = self._index
        if index is None or index[0] != generation:
            with self._index_lock:
                locations = [loc for loc in self._directory.all() if loc.active]
                index = (
                    generation,
                    GridIndex((loc, loc.latitude, loc.longitude) for loc in locations),
                )
                self._index = index
        return index[1]

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
        for near in self._grid().nearest_first(point[0], point[1], radius_km):
            if near.item.kind is LocationKind.STORE and (
                visible is None or near.item.id in visible
            ):
                stores.append(near.item.id)
                if len(stores) == limit:
                    break
        return stores

    def resolve(self, origin: Origin, visible: frozenset[str] | None = None) -> tuple[float, float]:
        """A point for the origin: its position, else its postal code's centroid, else the
        centroid of the locations ``visible`` (a caller's scope; None: all) with that
        postal code. NOT_FOUND when none knows it: a code that only a location outside
        the scope has reads as unknown, so its answer never gives that location away."""
        if origin.latitude is not None and origin.longitude is not None:
            return origin.latitude, origin.longitude
        found = self._postcodes.lookup(origin.postal_code, origin.country)
        if found is not None:
            return found
        wanted = normalize_postal_code(origin.postal_code)
        matches = [
            loc
            for loc in self._directory.all()
            if (visible is None or loc.id in visible)
            and normalize_postal_code(loc.postal_code) == wanted
            and (not origin.country or loc.country == origin.country.upper())
        ]
        if not matches:
            raise NotFound("postal_code", [origin.postal_code], reason="POSTAL_CODE_NOT_FOUND")
        return (
            sum(loc.latitude for loc in matches) / len(matches),
            sum(loc.longitude for loc in matches) / len(matches),
        )

    def records(
        self, skus: Sequence[str], *, visible: frozenset[str] | None = None
    ) -> dict[str, dict[str, StockRecord]]:
        """Every record of each sku, by location id, read when not cached; NOT_FOUND for
        a sku no location ``visible`` (a caller's scope; None: all) has reported."""
        result = {}
        for sku in skus:
            cached = self._cache.get_sku(sku)
            result[sku] = (self.read_sku(sku) if cached is None else cached).records
        self.check_reported(result, visible)
        return result

    def read_sku(self, sku: str) -> SkuRecords:
        """Every record of ``sku`` from the database, kept in the cache."""
        token = self._cache.sku_token(sku)
        read = {r.location_id: r for r in self._stock.records_for_sku(sku, None)}
        return self._cache.fill_sku(sku, read, token=token)

    def _lines(
        self,
        location: Location,
        lines: Sequence[CartLine],
        held: Sequence[StockRecord | None],
        now: datetime,
        exposure: Exposure,
    ) -> list[LineAnswer]:
        """Each line's answer at ``location``, from ``held``: the location's record of
        each line's sku (None where it has none)."""
        policy = location.stock_policy
        minute = now.replace(second=0, microsecond=0)
        generation = self._directory.generation
        answers = []
        for line, record in zip(lines, held, strict=True):
            # Within a minute the same record, quantity and exposure give the same answer
            # (confidence moves slowly), unless the record has gone stale meanwhile.
            stale = record is not None and is_stale(
                now - record.source_updated_at, policy.freshness_budget
            )
            # A hold that lapses within the minute changes the answer at once.
            holding = reserved_at(record, now) if record is not None and record.holds else 0
            key = (location.id, line.sku, line.quantity, exposure)
            cached = self._line_answers.get(minute, key)
            if (
                cached is not None
                and cached.stale == stale
                and cached.holding == holding
                and cached.directory_generation == generation
                and cached.record == record
            ):
                answers.append(cached.answer)
                continue
            if record is None:
                view = view_missing(location.id, line.sku, policy, exposure=exposure)
                ats = 0
            else:
                view = view_record(record, policy, now=now, exposure=exposure)
                ats = available_to_sell(
                    record.on_hand,
                    reserved_at(record, now),
                    policy.safety_stock_for(record.safety_stock),
                )
            answer = LineAnswer(line, view, can_supply(view, line.quantity, ats))
            kept = _KeptLine(record, stale, holding, generation, answer)
            self._line_answers.put(minute, key, kept)
            answers.append(answer)
        return answers

    def _ship_answer(
        self,
        lines: Sequence[CartLine],
        records: dict[str, dict[str, StockRecord]],
        now: datetime,
        exposure: Exposure,
        visible: frozenset[str] | None = None,
    ) -> tuple[ShipAnswer | None, datetime]:
        """The best shipping location (of those ``visible``, None for all): has every
        line, then earliest delivery, then id; failing that, the one with most lines. And
        until when that stands with time alone (a record going stale, a hold lapsing)."""
        best: tuple[tuple[object, ...], ShipAnswer] | None = None
        until = _FOREVER
        for location in self._directory.shippers(renew=False):
            if visible is not None and location.id not in visible:
                continue
            held = _held(records, lines, location)
            until = min(until, _valid_until(held, location, now))
            answers = self._lines(location, lines, held, now, exposure)
            delivery = delivered_by(location, delivery_date(location, now))
            answer = ShipAnswer(location, answers, delivery)
            key = (-sum(a.fulfillable for a in answers), delivery, location.id)
            if best is None or key < best[0]:
                best = (key, answer)
        return (None if best is None else best[1]), until

    # -- SearchNearby

    def check_reported(
        self, records: dict[str, dict[str, StockRecord]], visible: frozenset[str] | None
    ) -> None:
        """NOT_FOUND for a sku that no location ``visible`` (None: all) has reported."""
        unknown = [
            sku
            for sku, of_sku in records.items()
            if not of_sku or (visible is not None and visible.isdisjoint(of_sku))
        ]
        if unknown:
            raise NotFound("sku", unknown, reason="SKU_NOT_FOUND")

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
        first, from ``records`` (every record of each line's sku, by location id);
        ``visible``: only those locations (a caller's scope), None for all.

        Memory only: the read model loads what it needs first. A long walk gives the
        event loop its turn every WALK_SLICE_SECONDS (see _walk)."""
        maps = {sku: of_sku.records for sku, of_sku in records.items()}
        self.check_reported(maps, visible)
        now = self._clock()
        minute = now.replace(second=0, microsecond=0)
        cart = ("\x1f".join(f"{line.sku}={line.quantity}" for line in lines), exposure)
        # This cart's store answers for the minute, while the records and locations they
        # were built on stand: a sku's records get a new version whenever one of them
        # changes (StockCache.fill_sku); the directory's generation grows when a location
        # may have changed.
        skus = tuple([line.sku for line in lines])
        of_skus = tuple([records[sku] for sku in skus])
        versions = tuple([of_sku.version for of_sku in of_skus])
        generation = self._directory.generation
        kept = self._store_answers.get(minute, cart)
        if kept is None or kept.generation != generation or kept.versions != versions:
            kept = _CartAnswers(skus, of_skus, versions, generation)
            self._store_answers.put(minute, cart, kept)
        want = _Want(
            lines,
            method is not Method.SHIP_TO_STORE,
            len(lines) if require_all else 1,
            open_now,
            exposure,
            point,
            radius_km,
            limit,
            now,
        )
        found = None
        if visible is None:
            found = self._from_block(kept, want)
        if found is None:
            found = await self._walk(kept, want, visible)
        if visible is None:
            ship = self._cached_ship_answer(lines, maps, now, cart)
        else:
            ship = self._ship_answer(lines, maps, now, exposure, visible)[0]
        return SearchResult(point, found, ship)

    def _from_block(self, kept: _CartAnswers, want: _Want) -> list[NearbyAnswer] | None:
        """The answer from the stores that qualify in the block of cells around the
        origin's cell (kept per cart, block and filter while their answers stand), or
        None when stores beyond the block could belong in it."""
        lat, lon = want.point
        wanted = (block_key(lat, lon), want.pickup, want.needed, want.open_now)
        block = kept.blocks.get(wanted)
        if block is None or want.now >= block[0]:
            block = self._qualifying_in_block(kept, want, wanted[0])
            kept.keep_block(wanted, block)
        picked, complete = nearest_in_block(block[2], lat, lon, want.radius_km, want.limit)
        if not complete:
            return None
        stores = block[1]
        return [NearbyAnswer(stores[i], km) for i, km in picked]

    def _qualifying_in_block(self, kept: _CartAnswers, want: _Want, key: tuple[int, int]) -> _Block:
        """The stores of the block around ``key`` that qualify, with their unit vectors,
        and until when that stands (the first of the block's answers to change)."""
        until = _FOREVER
        stores: list[StoreAnswer] = []
        vectors: list[tuple[float, float, float]] = []
        # By id: a grid built just before a directory refresh holds the older objects.
        seen: set[str] = set()
        for grid in self._holder_grids_of(kept):
            items, block_vectors = grid.block(key)
            for location, vector in zip(items, block_vectors, strict=True):
                if location.id in seen:
                    continue
                seen.add(location.id)
                answered = self._qualifying(kept, want, location)
                if answered is None:
                    continue
                until = min(until, answered[0])
                if answered[1] is not None:
                    stores.append(answered[1])
                    vectors.append(vector)
        return until, stores, vectors

    async def _walk(
        self, kept: _CartAnswers, want: _Want, visible: frozenset[str] | None
    ) -> list[NearbyAnswer]:
        """The answer from a walk over the holders, nearest first (each sku's holders
        have a grid index of their own, so the walk only meets holders).

        A walk over many holders that do not qualify (a wide radius, a rare cart) could
        hold the event loop for seconds, so it pauses every WALK_SLICE_SECONDS and lets
        other calls run: the grids and record maps it walks are never changed in place,
        so a write meanwhile cannot tear it. ``self.work`` counts what it read."""
        found: list[NearbyAnswer] = []
        slice_ends = time.perf_counter() + WALK_SLICE_SECONDS
        listed: set[str] = set()  # as in the block: a store once, whatever its objects
        grids = self._holder_grids_of(kept)
        keep = None if visible is None else (lambda location: location.id in visible)
        lat, lon = want.point
        work = Work()
        for near in nearest_in_any(grids, lat, lon, want.radius_km, keep=keep, work=work):
            if time.perf_counter() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = time.perf_counter() + WALK_SLICE_SECONDS
            location = near.item
            answered = self._qualifying(kept, want, location)
            if answered is None or answered[1] is None or location.id in listed:
                continue
            listed.add(location.id)
            found.append(NearbyAnswer(answered[1], near.distance_km))
            if len(found) == want.limit:
                break
        self.last_walk = work
        return found

    def _qualifying(
        self, kept: _CartAnswers, want: _Want, location: Location
    ) -> tuple[datetime, StoreAnswer | None] | None:
        """None for a location that does not serve the method; else until when its
        answer stands, and the answer if it qualifies (enough lines, open if asked)."""
        capabilities = location.capabilities
        if location.kind is not LocationKind.STORE or not (
            capabilities.pickup if want.pickup else capabilities.ship_to_store
        ):
            return None
        entry = kept.answers.get(location.id)
        if entry is None or want.now >= entry[0]:
            entry = self._store_answer(location, want.lines, kept, want.now, want.exposure)
        store = entry[1]
        if store.fulfillable < want.needed or (want.open_now and not store.presentation.open_now):
            return entry[0], None
        return entry

    def _store_answer(
        self,
        location: Location,
        lines: Sequence[CartLine],
        kept: _CartAnswers,
        now: datetime,
        exposure: Exposure,
    ) -> tuple[datetime, StoreAnswer]:
        """One store's answer for a cart and until when it stands (one of its records
        going stale or losing a hold), kept in the cart's answers of the minute."""
        held = [of_sku.records.get(location.id) for of_sku in kept.records]
        answer = StoreAnswer(
            location,
            tuple(self._lines(location, lines, held, now, exposure)),
            self.presentation(location, now),
        )
        entry = (min(_valid_until(held, location, now), answer.presentation.valid_until), answer)
        if len(kept.answers) < _STORES_A_CART:
            kept.answers[location.id] = entry
        return entry

    def _cached_ship_answer(
        self,
        lines: Sequence[CartLine],
        records: dict[str, dict[str, StockRecord]],
        now: datetime,
        cart: tuple[str, Exposure],
    ) -> ShipAnswer | None:
        """The ship answer for a cart (its lines as text, and the exposure), reused within
        the minute until a write lands, a location changes, or one of the shippers'
        records goes stale or loses a hold."""
        minute = now.replace(second=0, microsecond=0)
        key = (cart, self._cache.generation, self._directory.generation)
        cached = self._ship_answers.get(minute, key)
        if cached is not None and now < cached.until:
            return cached.answer
        answer, until = self._ship_answer(lines, records, now, cart[1])
        self._ship_answers.put(minute, key, _KeptShip(answer, until))
        return answer

    def _holder_grids_of(self, kept: _CartAnswers) -> list[GridIndex[Location]]:
        """The grid index of each cart line's holders."""
        return [
            self._holders(sku, of_sku) for sku, of_sku in zip(kept.skus, kept.records, strict=True)
        ]

    def _holders(self, sku: str, of_sku: SkuRecords) -> GridIndex[Location]:
        """A grid index of the active locations in one sku's records."""
        generation = self._directory.generation
        cached = self._holder_grids.get(sku)
        if (
            cached is not None
            and cached.records_version == of_sku.version
            and cached.directory_generation == generation
        ):
            return cached.grid
        by_id = self._directory.by_id(renew=False)
        holders = (by_id.get(location_id) for location_id in of_sku.records)
        grid = GridIndex(
            (loc, loc.latitude, loc.longitude) for loc in holders if loc is not None and loc.active
        )
        with self._index_lock:
            if len(self._holder_grids) >= _HOLDER_GRIDS:
                self._holder_grids = {}
            self._holder_grids[sku] = _HolderGrid(of_sku.version, generation, grid)
        return grid

    def presentation(self, location: Location, now: datetime) -> Presentation:
        """Today's hours, open now and ready-by for ``location``, computed once a minute.

        Open now is as of the start of the minute. Ready-by is computed from the start of
        the next minute, so it never promises earlier than ready_by(now) would at any
        moment of the minute. A search at the very start of a minute gets ready_by(now)
        exactly, valid for that instant only: kept for the minute, it would promise
        "today 21:00" at 19:00:30 when the cutoff passed at 19:00:10.
        """
        minute = now.replace(second=0, microsecond=0)
        # The directory's generation grows whenever a location may have changed.
        generation = self._directory.generation
        cached = self._presentations.get(minute, location.id)
        if cached is not None and cached.directory_generation == generation:
            return cached.presentation
        today = hours_on(location, minute.astimezone(ZoneInfo(location.time_zone)).date())
        pickup = location.capabilities.pickup
        if now == minute:
            return Presentation(
                minute,
                today,
                is_open(location, minute),
                ready_by(location, now) if pickup else None,
                valid_until=now + _MICROSECOND,
            )
        next_minute = minute + timedelta(minutes=1)
        presentation = Presentation(
            minute,
            today,
            is_open(location, minute),
            ready_by(location, next_minute) if pickup else None,
            valid_until=next_minute,
        )
        kept = _KeptPresentation(generation, presentation)
        self._presentations.put(minute, location.id, kept)
        return presentation

    # -- GetFulfillmentOptions

    def fulfillment_options(
        self,
        lines: Sequence[CartLine],
        origin: Origin,
        *,
        radius_km: float,
        visible: frozenset[str] | None = None,
    ) -> tuple[tuple[float, float], list[Option]]:
        """The ranked ways to get the cart, from the stores within ``radius_km`` and the
        shipping locations (of those ``visible``, None for all)."""
        point = self.resolve(origin, visible)
        records = self.records([line.sku for line in lines], visible=visible)
        now = self._clock()
        nearby = [
            (
                near,
                self._lines(
                    near.item, lines, _held(records, lines, near.item), now, Exposure.EXACT
                ),
            )
            for near in self._grid().within(point[0], point[1], radius_km)
            if near.item.kind is LocationKind.STORE and (visible is None or near.item.id in visible)
        ]
        ship = self._ship_answer(lines, records, now, Exposure.EXACT, visible)[0]
        stores = [
            StoreSupply(near.item, near.distance_km, tuple(a.fulfillable for a in answers))
            for near, answers in nearby
        ]
        shipping = (
            None
            if ship is None
            else ShipSupply(ship.location, tuple(a.fulfillable for a in ship.lines), ship.delivery)
        )
        return point, build_options(lines, stores, shipping, now)


_FOREVER = datetime.max.replace(tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _held(
    records: dict[str, dict[str, StockRecord]], lines: Sequence[CartLine], location: Location
) -> list[StockRecord | None]:
    """The location's record of each line's sku, None where it has none."""
    return [records[line.sku].get(location.id) for line in lines]


def _valid_until(
    records: Sequence[StockRecord | None], location: Location, now: datetime
) -> datetime:
    """When answers built from ``records`` at ``now`` may change with time alone: a fresh
    record going stale, or a hold lapsing."""
    budget = location.stock_policy.freshness_budget
    until = _FOREVER
    for record in records:
        if record is None:
            continue
        # The first moment the record is stale: its age is then above the budget.
        stale_at = record.source_updated_at + budget + _MICROSECOND
        if now < stale_at < until:
            until = stale_at
        for _, expires in record.holds:
            if now < expires < until:
                until = expires
    return until
