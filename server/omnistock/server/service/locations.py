"""Location management."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.service.changes import ChangeBus, Changes
from omnistock.server.store.locations import LocationRepository


class LocationService:
    def __init__(
        self,
        repository: LocationRepository,
        directory: LocationDirectory,
        *,
        clock: Callable[[], datetime],
        changes: ChangeBus | None = None,
    ) -> None:
        self._repository = repository
        self._directory = directory
        self._clock = clock
        self._changes = changes or ChangeBus()

    def upsert_locations(self, locations: Sequence[Location]) -> list[Location]:
        self._repository.upsert_many(locations, now=self._clock())
        self._changes.publish(Changes(directory=True))
        self._directory.refresh()
        return list(locations)

    def get_location(self, location_id: str) -> Location:
        """The location as stored now: one row read, not a reload of the directory (which
        held the GIL for milliseconds with thousands of locations)."""
        found = self._repository.get_page(
            after_id="", limit=1, kind=None, ids=frozenset([location_id])
        )
        if not found:
            raise NotFound("location", [location_id], reason="LOCATION_NOT_FOUND")
        return found[0]

    def list_locations(
        self,
        *,
        after_id: str,
        limit: int,
        kind: LocationKind | None,
        visible: frozenset[str] | None = None,
    ) -> tuple[list[Location], str | None]:
        """One page of the locations ``visible`` (a caller's scope; None: all), and the id
        to continue after (None on the last page). The scope narrows the query, so every
        page but the last is full."""
        page = self._repository.get_page(after_id=after_id, limit=limit + 1, kind=kind, ids=visible)
        if len(page) > limit:
            return page[:limit], page[limit - 1].id
        return page, None
