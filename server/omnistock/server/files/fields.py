"""Parsing the values of one feed line, with the server's own limits.

Checking here what the server would check means a bad value is reported
against its line and column, before anything is sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from omnistock.server.domain.ids import ID_RULE, is_valid_id
from omnistock.server.service.limits import MAX_QUANTITY

_WHOLE = re.compile(r"[+-]?\d+(?:\.0*)?")
# The server accepts source times from 2000 up to 2100.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class LineError(ValueError):
    """Why one line cannot be imported; the message goes to the rejects file."""


def parse_id(text: str, name: str) -> str:
    if not text:
        raise LineError(f"{name} is required")
    if not is_valid_id(text):
        raise LineError(f"{name} {text!r} {ID_RULE}")
    return text


def parse_int(text: str, name: str, *, minimum: int = -MAX_QUANTITY) -> int:
    """A whole number such as 12, -3 or 12.0, within [minimum, MAX_QUANTITY]."""
    if not _WHOLE.fullmatch(text):
        raise LineError(f"{name} {text!r} is not a whole number")
    value = int(text.split(".", 1)[0])
    if not minimum <= value <= MAX_QUANTITY:
        raise LineError(f"{name} {value} must be within [{minimum:,}, {MAX_QUANTITY:,}]")
    return value


def parse_optional_int(text: str, name: str, *, minimum: int) -> int | None:
    return parse_int(text, name, minimum=minimum) if text else None


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time with a UTC offset, such as 2026-11-23T12:00:00+01:00 or ...Z."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise LineError(f"{name} {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise LineError(f"{name} {text!r} needs a UTC offset, such as Z or +01:00")
    if not EARLIEST <= value < LATEST:
        raise LineError(f"{name} {text!r} must be between the years 2000 and 2100")
    return value


def json_text(value: object, name: str) -> str:
    """A JSON value as the text a CSV cell would hold ("" for null)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LineError(f"{name} must be a string or a number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
