"""Log lines: the request id of the call they belong to, text or JSON, no secrets.

Every call's id lives in ``REQUEST_ID`` (a context variable: each call runs in a task of
its own) and ``RequestIdFilter`` copies it onto each record made during the call, so a
traceback logged by the interceptor layer carries the id its caller got back.
``configure`` sets up the root handler once, for ``omnistock serve``; the secret filter
(redaction.py) goes on that handler too, so JSON lines are masked like text ones.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from omnistock.server import redaction

REQUEST_ID: ContextVar[str] = ContextVar("omnistock_request_id", default="")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current call's request id on every record as ``request_id`` ('' outside a call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with `` request_id=...`` after lines made during a call."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = redaction.redact(getattr(record, "request_id", ""))
        if request_id and not getattr(record, "access", None):
            first, newline, rest = line.partition("\n")
            line = f"{first} request_id={request_id}{newline}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, the access log's
    fields (``access``) and any exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:  # the caller's to choose: a key pasted there is masked too
            entry["request_id"] = redaction.redact(request_id)
        access = getattr(record, "access", None)
        if isinstance(access, dict):  # the secret filter saw the message, not these
            entry.update(
                {k: redaction.redact(v) if isinstance(v, str) else v for k, v in access.items()}
            )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str = "text") -> None:
    """The root handler for a server process: ``log_format`` 'text' or 'json', request ids
    on every line, secrets masked."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"--log-format must be text or json, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    redaction.install()
