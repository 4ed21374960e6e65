"""From a google-local line's available to sell to the on_hand that gives it.

A local inventory feed states what a shopper may buy (available to sell), while a
stock record holds on_hand, with safety stock and holds kept apart:
``ATS = max(0, on_hand - reserved - safety_stock)``. So a line's on_hand is set
from the record as it is when the import reads it (ExportStock, a location at a
time, when its first line comes):

- when the record's ATS already is the line's, its on_hand stays (the update only
  refreshes its time): a re-imported export changes no count, and a negative
  on_hand at 0 stays as it was;
- otherwise ``on_hand = quantity + safety stock + reserved`` (the record's effective
  safety stock, else the location's default; the active holds), so that ATS after
  the import is the line's quantity.

A hold placed or ended between that read and the write moves ATS by its size, as it
would have a moment later. Reading exact counts needs a key with exact exposure; a
location that cannot be read has its lines rejected with the reason.

Memory: three numbers per stocked sku of each location the file names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from omnistock.client import ApiError, Client, NotFoundError
from omnistock.server.domain.stock import DEFAULT_SAFETY_STOCK, available_to_sell
from omnistock.server.files.formats import Record, Reject
from omnistock.server.files.report import describe_error


@dataclass(frozen=True, slots=True)
class _Counts:
    on_hand: int
    reserved: int
    safety_stock: int


@dataclass(slots=True)
class _Location:
    default_safety_stock: int
    records: dict[str, _Counts]


class CurrentStock:
    """Resolves google-local Records (``available`` set) into absolute on_hand updates."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._locations: dict[str, _Location | str] = {}  # or why it cannot be read

    def resolve(self, items: Iterator[Record | Reject]) -> Iterator[Record | Reject]:
        for item in items:
            if isinstance(item, Reject) or item.available is None:
                yield item
                continue
            location = self._location(item.location_id)
            if isinstance(location, str):
                yield Reject(item.line, location, item.location_id)
            else:
                yield replace(item, on_hand=on_hand_for(item.available, item.sku, location))

    def _location(self, location_id: str) -> _Location | str:
        known = self._locations.get(location_id)
        if known is None:
            known = self._locations[location_id] = self._read(location_id)
        return known

    def _read(self, location_id: str) -> _Location | str:
        try:
            location = self._client.get_location(location_id)
            default = (
                location.default_safety_stock
                if location.HasField("default_safety_stock")
                else DEFAULT_SAFETY_STOCK
            )
            records = {
                answer.sku: _Counts(answer.on_hand, answer.reserved, answer.safety_stock)
                for answer in self._client.export_stock(location_id)
            }
        except NotFoundError:
            return f"LOCATION_NOT_FOUND: no location {location_id!r}"
        except ApiError as error:
            return f"cannot read the current stock of {location_id}: {describe_error(error)}"
        return _Location(default, records)


def on_hand_for(available: int, sku: str, location: _Location) -> int:
    counts = location.records.get(sku)
    if counts is None:
        counts = _Counts(0, 0, location.default_safety_stock)
    if available_to_sell(counts.on_hand, counts.reserved, counts.safety_stock) == available:
        return counts.on_hand
    return available + counts.safety_stock + counts.reserved
