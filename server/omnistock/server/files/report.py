"""What the import and export commands print: errors, and the closing summary."""

from __future__ import annotations

from omnistock.client import ApiError, UnavailableError


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def describe_error(error: ApiError) -> str:
    """One line: the status, message and reason, then any bad fields."""
    violations = "; ".join(f"{v.field}: {v.description}" for v in error.field_violations)
    return f"{error} ({violations})" if violations else str(error)


def error_lines(error: ApiError, target: str) -> list[str]:
    """An SDK error as the commands print it: no traceback, one bad field a line."""
    lines = [f"omnistock: {error}"]
    lines += [f"  {v.field}: {v.description}" for v in error.field_violations]
    if isinstance(error, UnavailableError):
        lines.append(f"  (is an omnistock server running at {target}?)")
    return lines


def totals_line(applied: int, stale: int, rejected: int, skipped: int, rejects: str) -> str:
    """For example: applied 9,812  stale 120  rejected 3 (see data.csv.rejects)."""
    parts = [f"applied {applied:,}", f"stale {stale:,}", f"rejected {rejected:,}"]
    if skipped:
        parts.append(f"skipped {skipped:,}")
    text = "  ".join(parts)
    return f"{text} (see {rejects})" if rejected or skipped else text
