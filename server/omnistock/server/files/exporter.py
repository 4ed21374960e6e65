"""``omnistock export``: a server's stock as a file.

- google-local: Google's local product inventory feed, one TSV row per fresh stocked
  sku at each store. Only the spec's values and lengths are written: a row that cannot
  be (a warehouse's, a stale record's, an id over 50 characters) is left out and counted.
- google-local with ``--channel``, and google-products: one channel's view
  (files/channel_export.py).
- csv, jsonl: every record of every active location (or one), lossless: on_hand, safety
  stock, source time and sequence, which ``omnistock import --mode delta`` takes back
  as they were.

Streamed from ExportStock to a temporary file that replaces the output only once whole.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TextIO

from omnistock.client import ApiError, Availability, Client, LocationKind, StockStatus
from omnistock.server.files import google
from omnistock.server.files.formats import Format
from omnistock.server.files.report import error_lines, plural

GOOGLE_HEADER = ("store_code", "id", "quantity", "availability", "pickup_method", "pickup_sla")
AVAILABILITY: dict[int, str] = {
    StockStatus.IN_STOCK: google.IN_STOCK,
    StockStatus.LIMITED: google.LIMITED,
    StockStatus.OUT_OF_STOCK: google.OUT_OF_STOCK,
}
# The lossless formats' columns, which `omnistock import` reads back.
RECORD_COLUMNS = (
    "location_id",
    "sku",
    "on_hand",
    "safety_stock",
    "source_updated_at",
    "source_sequence",
)
# Why a row was left out of a local inventory feed, as the summary says it.
WAREHOUSE = "warehouse row"
STALE = "stale row"
LONG_ID = f"row with an id over {google.MAX_ID_LENGTH} characters"


class ExportError(Exception):
    pass


@dataclass(slots=True)
class ExportResult:
    rows: int = 0
    locations: int = 0  # with at least one row
    left_out: Counter[str] = field(default_factory=Counter)  # rows not written, by why


def google_row(answer: Availability, pickup: tuple[str, str]) -> tuple[str, ...]:
    """A fresh record's row: quantity is available to sell, availability its band's."""
    availability = AVAILABILITY[int(answer.status)]
    return (answer.location_id, answer.sku, str(answer.available_to_sell), availability, *pickup)


def why_left_out(answer: Availability) -> str:
    """Why a store's record cannot go into a local inventory feed, or ""."""
    if int(answer.status) not in AVAILABILITY:
        return STALE  # UNKNOWN: its count is too old to offer, and 0 would be news
    if len(answer.sku) > google.MAX_ID_LENGTH:
        return LONG_ID
    return ""


def write_google_local(client: Client, out: TextIO, location: str | None) -> ExportResult:
    kind = LocationKind.STORE
    stores = {loc.id: google.pickup_columns(loc) for loc in client.list_locations(kind=kind)}
    if location is not None and location not in stores:
        client.get_location(location)  # raises NotFoundError if there is no such location
        raise ExportError(f"{location} is a warehouse: the local inventory feed lists stores")
    result = ExportResult()
    out.write("\t".join(GOOGLE_HEADER) + "\n")
    previous = ""
    for answer in client.export_stock(location or ""):
        pickup = stores.get(answer.location_id)
        why = WAREHOUSE if pickup is None else why_left_out(answer)
        if why or pickup is None:
            result.left_out[why] += 1
            continue
        out.write("\t".join(google_row(answer, pickup)) + "\n")
        result.rows += 1
        if answer.location_id != previous:  # answers come ordered by location
            result.locations, previous = result.locations + 1, answer.location_id
    return result


def record_values(answer: Availability) -> dict[str, str | int | None]:
    """One record as the lossless formats hold it."""
    stamp = answer.as_of.ToDatetime(tzinfo=UTC)
    return {
        "location_id": answer.location_id,
        "sku": answer.sku,
        "on_hand": answer.on_hand,
        "safety_stock": answer.safety_stock,
        "source_updated_at": stamp.isoformat(),
        "source_sequence": answer.source_sequence if answer.HasField("source_sequence") else None,
    }


def write_records(client: Client, out: TextIO, location: str | None, form: Format) -> ExportResult:
    result = ExportResult()
    writer = csv.writer(out, lineterminator="\n")
    if form is Format.CSV:
        writer.writerow(RECORD_COLUMNS)
    previous = ""
    for answer in client.export_stock(location or ""):
        values = record_values(answer)
        if form is Format.CSV:
            writer.writerow(["" if v is None else v for v in values.values()])
        else:
            out.write(json.dumps(values) + "\n")
        result.rows += 1
        if answer.location_id != previous:
            result.locations, previous = result.locations + 1, answer.location_id
    return result


def run_export(
    target: str,
    output: Path,
    location: str | None,
    *,
    out: TextIO,
    err: TextIO,
    api_key: str | None = None,
    form: Format = Format.GOOGLE_LOCAL,
    channel: str | None = None,
) -> int:
    if form is Format.GOOGLE_PRODUCTS and channel is None:
        print("omnistock export: --format google-products needs --channel", file=err)
        return 2
    if channel is not None and form not in (Format.GOOGLE_LOCAL, Format.GOOGLE_PRODUCTS):
        print(f"omnistock export: --channel is for the Google feeds, not {form.value}", file=err)
        return 2
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
            from omnistock.server.files import channel_export  # it builds on this module

            if form is Format.GOOGLE_PRODUCTS:
                assert channel is not None  # the command requires it
                result = channel_export.write_google_products(client, file, channel)
            elif form is Format.GOOGLE_LOCAL and channel is not None:
                result = channel_export.write_google_local_channel(client, file, location, channel)
            elif form is Format.GOOGLE_LOCAL:
                result = write_google_local(client, file, location)
            else:
                result = write_records(client, file, location, form)
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
    places = plural(result.locations, "store" if form is Format.GOOGLE_LOCAL else "location")
    if form is Format.GOOGLE_PRODUCTS:
        places = f"channel {channel} ({plural(result.locations, 'location')})"
    text = f"wrote {plural(result.rows, 'row')} for {places} to {output}"
    reasons = [
        plural(count, why)
        for why in dict.fromkeys([WAREHOUSE, STALE, LONG_ID, *sorted(result.left_out)])
        if (count := result.left_out[why])
    ]
    if reasons:
        text += f" (left out {', '.join(reasons)})"
    print(text, file=out)
    return 0
