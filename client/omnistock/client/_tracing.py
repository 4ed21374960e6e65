"""Trace context for every call: when the program uses OpenTelemetry, the SDK sends the
current span's context (W3C ``traceparent``, through the program's configured
propagators) in each call's metadata, so the server's span joins the caller's trace.

OpenTelemetry is not a dependency of the SDK: without it installed, nothing is sent and
nothing is paid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_inject: Callable[[dict[str, str]], Any] | None
try:
    from opentelemetry.propagate import inject as _inject
except ImportError:  # the SDK installs alone
    _inject = None


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as metadata; empty outside a span or without
    OpenTelemetry."""
    if _inject is None:
        return ()
    carrier: dict[str, str] = {}
    _inject(carrier)
    return tuple(carrier.items())
