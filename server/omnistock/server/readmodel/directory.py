"""The location directory: every location in memory, for the rules and the id checks.

Stores and warehouses number in the thousands, not millions, so reads look them
up here instead of joining. Local writes refresh it at once; writes by other
processes show within ``max_age``: after that it asks the database for a cheap
version stamp and reloads only when the stamp has changed (a full reload of
thousands of locations holds the GIL long enough to show in read latency).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from omnistock.server.domain.errors import NotFound
from omnistock.server.domain.locations import Location
from omnistock.server.readmodel.single_flight import SingleFlight
from omnistock.server.service.changes import Changes
from omnistock.server.store.locations import LocationRepository

DEFAULT_MAX_AGE_SECONDS = 5.0


class LocationDirectory:
    def __init__(
        self, repository: LocationRepository, *, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> None:
        self._repository = repository
        self._max_age = max_age_seconds
        self._lock = threading.Lock()
        self._by_id: dict[str, Location] = {}
        self._active: list[Location] = []
        self._all: list[Location] = []
        self._shippers: list[Location] = []
        self._loaded_at = float("-inf")
        self._version = (-1, -1)
        self.generation = 0
        self._flight: SingleFlight[None] = SingleFlight()

    def refresh(self) -> None:
        """Reload every location; concurrent refreshes share one load."""
        self._flight.run("refresh", self._reload)

    def _reload(self) -> None:
        version = self._repository.version()
        locations = self._repository.get_all()
        with self._lock:
            self._version = version
            self._by_id = {location.id: location for location in locations}
            self._active = [location for location in locations if location.active]
            changed = locations != self._all
            self._all = list(locations)
            self._shippers = [loc for loc in locations if loc.active and loc.capabilities.ship_from]
            self._loaded_at = time.monotonic()
            # Grows whenever the locations changed; indexes and kept answers rebuild on it.
            # Last: a reader that sees the new generation sees the new locations (one that
            # sees new locations under the old generation only builds an index again).
            if changed or not self.generation:
                self.generation += 1

    def apply(self, changes: Changes) -> None:
        """A change bus subscriber: locations changed elsewhere, so reload at next use; or
        changes may have been missed, so check the version stamp at next use."""
        if changes.directory:
            self._loaded_at = float("-inf")
            self._version = (-1, -1)
        elif changes.everything:
            self._loaded_at = float("-inf")

    def _current(self, renew: bool = True) -> dict[str, Location]:
        if renew and time.monotonic() - self._loaded_at > self._max_age:
            if self._repository.version() == self._version:
                self._loaded_at = time.monotonic()
            else:
                self.refresh()
        return self._by_id

    def get(self, location_id: str) -> Location | None:
        return self._current().get(location_id)

    def require(self, location_ids: Iterable[str]) -> list[Location]:
        """The named locations, in order; NOT_FOUND names every unknown one."""
        ids = list(location_ids)
        by_id = self._lookup(ids)
        missing = [location_id for location_id in ids if location_id not in by_id]
        if missing:
            raise NotFound("location", dict.fromkeys(missing), reason="LOCATION_NOT_FOUND")
        return [by_id[location_id] for location_id in ids]

    def is_fresh(self) -> bool:
        """True while no refresh is due: lookups until then never touch the database."""
        return time.monotonic() - self._loaded_at <= self._max_age

    def cached(self, location_ids: Iterable[str]) -> list[Location] | None:
        """The named locations from memory, or None if one is unknown or a refresh is due.

        Never touches the database, so the event loop may call it.
        """
        if time.monotonic() - self._loaded_at > self._max_age:
            return None
        by_id = self._by_id
        try:
            return [by_id[location_id] for location_id in location_ids]
        except KeyError:
            return None

    def known(self, location_ids: Iterable[str]) -> set[str]:
        """Those of the ids that name a location."""
        ids = list(location_ids)
        by_id = self._lookup(ids)
        return {i for i in ids if i in by_id}

    def _lookup(self, ids: list[str]) -> dict[str, Location]:
        by_id = self._current()
        if any(i not in by_id for i in ids) and self._repository.version() != self._version:
            # Another process may have just created it: if the table changed, reload
            # before saying no (an unknown id costs one cheap version read, not a reload).
            self.refresh()
            by_id = self._by_id
        return by_id

    def all(self) -> list[Location]:
        """Every location, ordered by id."""
        self._current()
        return self._all

    def shippers(self, *, renew: bool = True) -> list[Location]:
        """Active locations that ship to shoppers (``renew``: refreshed first when due;
        without it, from memory, never touching the database)."""
        self._current(renew)
        return self._shippers

    def by_id(self, *, renew: bool = True) -> dict[str, Location]:
        """Every location by id (``renew`` as for shippers)."""
        return self._current(renew)

    def active(self) -> list[Location]:
        self._current()
        return self._active
