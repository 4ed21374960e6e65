"""The schema's microsecond conversions, which live in domain/timeutil.py; kept here for
the store modules that still import them from this name."""

from omnistock.server.domain.timeutil import from_micros, to_micros

__all__ = ["from_micros", "to_micros"]
