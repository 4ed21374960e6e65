"""``omnistock export``: Google's local product inventory feed from a server's stock.

One TSV row per stocked sku at each store (warehouses are left out), streamed
from ExportStock to a temporary file that replaces the output only once whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from omnistock.client import ApiError, Availability, Client, Location, LocationKind, StockStatus
from omnistock.server.files.report import error_lines, plural

HEADER = ("store_code", "id", "quantity", "availability", "pickup_method", "pickup_sla")
# A store that has an order ready within this many minutes offers same-day pickup.
SAME_DAY_MINUTES = 240
AVAILABILITY = {
    StockStatus.IN_STOCK: "in_stock",
    StockStatus.LIMITED: "limited_availability",
    StockStatus.OUT_OF_STOCK: "out_of_stock",
    StockStatus.UNKNOWN: "out_of_stock",
}


class ExportError(Exception):
    pass


@dataclass(slots=True)
class ExportResult:
    rows: int = 0
    stores: int = 0  # with at least one row
    left_out: int = 0  # warehouse rows


def pickup_columns(location: Location) -> tuple[str, str]:
    """pickup_method and pickup_sla of a store."""
    if not location.capabilities.pickup:
        return "not_supported", "next_day"
    same_day = location.pickup_lead_time_minutes <= SAME_DAY_MINUTES
    return "buy", "same_day" if same_day else "next_day"


def row(answer: Availability, pickup: tuple[str, str]) -> tuple[str, ...]:
    status = int(answer.status)
    availability = AVAILABILITY.get(status, "out_of_stock")  # type: ignore[call-overload]
    # A stale (UNKNOWN) count is not offered for sale: 0, to agree with out_of_stock.
    quantity = 0 if status == StockStatus.UNKNOWN else answer.available_to_sell
    return (answer.location_id, answer.sku, str(quantity), availability, *pickup)


def write_google_local(client: Client, out: TextIO, location: str | None) -> ExportResult:
    stores = {loc.id: pickup_columns(loc) for loc in client.list_locations(kind=LocationKind.STORE)}
    if location is not None and location not in stores:
        client.get_location(location)  # raises NotFoundError if there is no such location
        raise ExportError(f"{location} is a warehouse: the local inventory feed lists stores")
    result = ExportResult()
    out.write("\t".join(HEADER) + "\n")
    previous = ""
    for answer in client.export_stock(location or ""):
        pickup = stores.get(answer.location_id)
        if pickup is None:
            result.left_out += 1
            continue
        out.write("\t".join(row(answer, pickup)) + "\n")
        result.rows += 1
        if answer.location_id != previous:  # answers come ordered by location
            result.stores, previous = result.stores + 1, answer.location_id
    return result


def run_export(
    target: str,
    output: Path,
    location: str | None,
    *,
    out: TextIO,
    err: TextIO,
    api_key: str | None = None,
) -> int:
    if output.is_dir():
        print(f"omnistock export: {output} is a directory", file=err)
        return 2
    if not output.parent.is_dir():
        print(f"omnistock export: {output.parent}: no such directory", file=err)
        return 2
    partial = output.with_name(f".{output.name}.partial")
    try:
        with (
            Client(target, api_key=api_key) as client,
            partial.open("w", encoding="utf-8", newline="") as file,
        ):
            result = write_google_local(client, file, location)
        os.replace(partial, output)
    except (ApiError, ExportError, OSError) as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, ApiError):
            lines = error_lines(error, target)
        else:
            lines = [f"omnistock export: {error}"]
        for line in lines:
            print(line, file=err)
        return 1
    text = f"wrote {plural(result.rows, 'row')} for {plural(result.stores, 'store')} to {output}"
    if result.left_out:
        text += f" (left out {plural(result.left_out, 'warehouse row')})"
    print(text, file=out)
    return 0
