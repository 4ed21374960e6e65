"""W3C trace context on every call, when OpenTelemetry is installed.

OpenTelemetry is not a dependency of the SDK: without it, calls carry no trace headers.
With it, the current span's ``traceparent`` (and ``tracestate``) go into the call's
metadata, so the server's spans join the caller's trace.
"""

from __future__ import annotations

import importlib
from typing import Any

_TRACE_HEADERS = ("traceparent", "tracestate")

try:
    _propagate: Any = importlib.import_module("opentelemetry.propagate")
except ImportError:  # the SDK does not depend on OpenTelemetry
    _propagate = None


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as call metadata; empty without OpenTelemetry."""
    if _propagate is None:
        return ()
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return tuple((key, carrier[key]) for key in _TRACE_HEADERS if key in carrier)
