"""The feed file formats (csv, jsonl, Google's local product inventory feed) and
how one line of them becomes a Record to send, or a Reject with its reason."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from omnistock.server.files import google
from omnistock.server.files.fields import (
    LineError,
    parse_id,
    parse_int,
    parse_optional_int,
    parse_time,
)
from omnistock.server.files.lines import Line


class Format(enum.Enum):
    CSV = "csv"
    JSONL = "jsonl"
    GOOGLE_LOCAL = "google-local"
    # Export only: the products feed's availability for one channel.
    GOOGLE_PRODUCTS = "google-products"


class Mode(enum.Enum):
    SNAPSHOT = "snapshot"
    DELTA = "delta"


@dataclass(frozen=True, slots=True)
class Settings:
    format: Format
    mode: Mode
    location: str | None  # --location
    as_of: datetime | None  # --as-of
    now: datetime  # the source time of google-local lines without --as-of


@dataclass(frozen=True, slots=True)
class Record:
    line: Line
    location_id: str
    sku: str
    on_hand: int | None  # exactly one of on_hand and adjustment is set
    adjustment: int | None
    safety_stock: int | None
    source_updated_at: datetime | None
    source_sequence: int | None
    # google-local: the units available to sell the line states. on_hand is then set from
    # it and the record's current safety stock and holds (see stock.CurrentStock).
    available: int | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    line: Line
    reason: str
    location_id: str = ""  # when the line named one that could be read


class FormatError(Exception):
    """The file cannot be read in the given format: no header, a column missing."""


# Each field and the column names it may come under, in order of preference.
COLUMNS: dict[str, tuple[str, ...]] = {
    "location_id": ("location_id", "store_code"),
    "sku": ("sku", "id"),
    "on_hand": ("on_hand", "quantity"),
    "adjustment": ("adjustment",),
    "safety_stock": ("safety_stock",),
    "source_updated_at": ("source_updated_at",),
    "source_sequence": ("source_sequence",),
}
GOOGLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "location_id": ("store_code",),
    "sku": ("id",),
    "on_hand": ("quantity",),
    "availability": ("availability",),
}

Getter = Callable[[str], str]


def _names(field: str, columns: dict[str, tuple[str, ...]]) -> str:
    return " or ".join(columns[field])


def map_columns(header: list[str], settings: Settings) -> dict[str, int]:
    """Each field's column index; FormatError when a required one is missing."""
    names = [name.strip().lower() for name in header]
    google = settings.format is Format.GOOGLE_LOCAL
    columns = GOOGLE_COLUMNS if google else COLUMNS
    index = {}
    for field, aliases in columns.items():
        found = next((names.index(a) for a in aliases if a in names), None)
        if found is not None:
            index[field] = found
    shown = ", ".join(names)
    if "sku" not in index:
        raise FormatError(f"no {_names('sku', columns)} column (the header has: {shown})")
    if "location_id" not in index and settings.location is None:
        raise FormatError(
            f"no {_names('location_id', columns)} column: pass --location (the header has: {shown})"
        )
    if google:
        if "on_hand" not in index and "availability" not in index:
            raise FormatError(f"no quantity or availability column (the header has: {shown})")
    elif "on_hand" not in index and (settings.mode is Mode.SNAPSHOT or "adjustment" not in index):
        wanted = _names("on_hand", columns)
        if settings.mode is Mode.DELTA:
            wanted += " or adjustment"
        raise FormatError(f"no {wanted} column (the header has: {shown})")
    return index


def _location(text: str, settings: Settings) -> str:
    if text and settings.location is not None and text != settings.location:
        raise LineError(f"location_id {text!r} is not the --location {settings.location!r}")
    return parse_id(text or settings.location or "", "location_id")


def build(get: Getter, line: Line, settings: Settings) -> Record | Reject:
    """One line's Record, or its Reject."""
    try:
        location = _location(get("location_id"), settings)
    except LineError as error:
        return Reject(line, str(error))
    try:
        return _record(get, line, location, settings)
    except LineError as error:
        return Reject(line, str(error), location)


def _google_record(get: Getter, line: Line, location: str, settings: Settings) -> Record:
    """A local inventory line: what it says is available to sell, at the file's time."""
    sku = parse_id(get("sku"), "sku")
    text = get("on_hand")
    quantity = parse_int(text, "quantity", minimum=0) if text else None
    available = google.available_to_sell(quantity, google.parse_availability(get("availability")))
    source_time = settings.as_of or settings.now
    return Record(line, location, sku, None, None, None, source_time, None, available)


def _record(get: Getter, line: Line, location: str, settings: Settings) -> Record:
    if settings.format is Format.GOOGLE_LOCAL:
        return _google_record(get, line, location, settings)
    sku = parse_id(get("sku"), "sku")
    on_hand_text, adjustment_text = get("on_hand"), get("adjustment")
    if settings.mode is Mode.SNAPSHOT:
        if not on_hand_text:
            hint = "; adjustment is for --mode delta" if adjustment_text else ""
            raise LineError(f"on_hand is required{hint}")
        adjustment_text = ""
    elif on_hand_text and adjustment_text:
        raise LineError("give on_hand or adjustment, not both")
    elif not on_hand_text and not adjustment_text:
        raise LineError("on_hand or adjustment is required")
    on_hand = parse_int(on_hand_text, "on_hand") if on_hand_text else None
    adjustment = parse_int(adjustment_text, "adjustment") if adjustment_text else None
    stamp = get("source_updated_at")
    if stamp:
        source_time: datetime | None = parse_time(stamp, "source_updated_at")
    else:
        source_time = settings.as_of
    if source_time is None and settings.mode is Mode.DELTA:
        raise LineError("source_updated_at is required (or pass --as-of)")
    return Record(
        line,
        location,
        sku,
        on_hand,
        adjustment,
        parse_optional_int(get("safety_stock"), "safety_stock", minimum=0),
        source_time,
        parse_optional_int(get("source_sequence"), "source_sequence", minimum=0),
    )
