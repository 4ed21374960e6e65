"""SearchNearby's walk: the nearest stores that qualify for a cart, from the memory of
the minute.

First the block of cells around the origin's cell, kept per cart and filter while its
answers stand; when stores beyond the block could belong in the answer, a walk over each
line's holders, nearest first. A long walk gives the event loop its turn every
WALK_SLICE_SECONDS: the grids and record maps it walks are never changed in place, so a
write meanwhile cannot tear it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from omnistock.server.domain.fulfillment import CartLine, Method
from omnistock.server.domain.geo import (
    GridIndex,
    Work,
    block_key,
    nearest_in_any_pausing,
    nearest_in_block,
)
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.domain.stock import Exposure
from omnistock.server.readmodel.minute import MinuteCache
from omnistock.server.readmodel.stock import SkuRecords
from omnistock.server.service.answers import (
    FOREVER,
    AnswerMemo,
    NearbyAnswer,
    SearchResult,
    StoreAnswer,
    valid_until,
)
from omnistock.server.service.spatial import SpatialIndex

# The most carts whose store answers are kept each minute, and stores for each cart.
_CARTS = 500
_STORES_A_CART = 200
# The most stores listed in the blocks of cells kept for each cart, each minute.
_BLOCK_STORES_A_CART = 2_000
# The longest a search's walk holds the event loop before it lets other calls run.
WALK_SLICE_SECONDS = 0.001


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


class NearbySearch:
    def __init__(
        self,
        spatial: SpatialIndex,
        answers: AnswerMemo,
        *,
        clock: Callable[[], datetime],
        directory_generation: Callable[[], int],
    ) -> None:
        self._spatial = spatial
        self._answers = answers
        self._clock = clock
        self._directory_generation = directory_generation
        # What the last walk read (cells, candidates) when ``measure_work`` is on: the
        # count costs about a tenth of a walk, so it is off unless asked for (tests of the
        # work ceiling, diagnostics).
        self.measure_work = False
        self.last_walk = Work()
        # The carts' store answers of the minute (see _CartAnswers), at most _CARTS.
        self._store_answers: MinuteCache[tuple[str, Exposure], _CartAnswers] = MinuteCache(
            max_entries=_CARTS
        )

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

        Memory only: the read model loads what it needs first (and checks the skus are
        known). A long walk gives the event loop its turn every WALK_SLICE_SECONDS."""
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
        generation = self._directory_generation()
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
            ship = self._answers.cached_ship_answer(lines, records, now, cart)
        else:
            ship = self._answers.ship_answer(lines, records, now, exposure, visible)[0]
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
        until = FOREVER
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
        so a write meanwhile cannot tear it. ``last_walk`` counts what it read."""
        found: list[NearbyAnswer] = []
        slice_ends = time.perf_counter() + WALK_SLICE_SECONDS
        listed: set[str] = set()  # as in the block: a store once, whatever its objects
        grids = self._holder_grids_of(kept)
        keep = None if visible is None else (lambda location: location.id in visible)
        lat, lon = want.point
        work = Work() if self.measure_work else None
        walk = nearest_in_any_pausing(grids, lat, lon, want.radius_km, keep=keep, work=work)
        for near in walk:
            if time.perf_counter() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = time.perf_counter() + WALK_SLICE_SECONDS
            if near is None:  # the walk read cells and found nothing yet
                continue
            location = near.item
            answered = self._qualifying(kept, want, location)
            if answered is None or answered[1] is None or location.id in listed:
                continue
            listed.add(location.id)
            found.append(NearbyAnswer(answered[1], near.distance_km))
            if len(found) == want.limit:
                break
        if work is not None:
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
            tuple(self._answers.lines(location, lines, held, kept.versions, now, exposure)),
            self._answers.presentation(location, now),
        )
        entry = (min(valid_until(held, location, now), answer.presentation.valid_until), answer)
        if len(kept.answers) < _STORES_A_CART:
            kept.answers[location.id] = entry
        return entry

    def _holder_grids_of(self, kept: _CartAnswers) -> list[GridIndex[Location]]:
        """The grid index of each cart line's holders."""
        return [
            self._spatial.holders(sku, of_sku)
            for sku, of_sku in zip(kept.skus, kept.records, strict=True)
        ]
