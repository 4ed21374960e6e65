"""Where a search starts: a position, or a postal code (a postcode table's centroid, else
the centroid of the locations with that code)."""

from __future__ import annotations

from dataclasses import dataclass

from omnistock.server.domain.errors import NotFound
from omnistock.server.readmodel.directory import LocationDirectory
from omnistock.server.store.postcodes import PostcodeRepository, normalize_postal_code


@dataclass(frozen=True, slots=True)
class Origin:
    latitude: float | None = None
    longitude: float | None = None
    postal_code: str = ""
    country: str = ""


class OriginResolver:
    def __init__(self, directory: LocationDirectory, postcodes: PostcodeRepository) -> None:
        self._directory = directory
        self._postcodes = postcodes

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
