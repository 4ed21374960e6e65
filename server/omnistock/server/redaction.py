"""No secret in any log line: API keys and ``authorization`` values are masked.

gRPC itself logs a metadata value it cannot decode as UTF-8, whole, at ERROR and with a
traceback (``Invalid encoding on b'...'``): a key sent with one stray byte would land in
the log. ``install()`` puts ``SecretFilter`` on gRPC's loggers (records made there,
whatever handler takes them, Python's last-resort one included) and on the root
logger's handlers (every record that propagates to them, ours included).

>>> redact("retry with authorization: Bearer osk_3e0186_s3cr3t")
'retry with authorization: [REDACTED]'
>>> redact("key osk_3e0186_s3cr3t failed")
'key osk_3e0186_[REDACTED] failed'
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"

# A value up to a quote, a space or punctuation, unless it is masked already.
_VALUE = r"(?!\[REDACTED\])[^\s'\",;)\]}]+"
_AUTHORIZATION = re.compile(r"(authorization[\s'\":=,]{1,6})(?:bearer\s+)?" + _VALUE, re.I)
_BEARER = re.compile(r"(bearer\s+)" + _VALUE, re.I)
# A key's id is no secret (it is in `keys list` and the audit log); what follows it is.
_KEY = re.compile(r"(osk_[0-9A-Za-z]*_)(?!\[REDACTED\])[^\s'\"]+")

# gRPC's loggers (it names them after its modules).
GRPC_LOGGERS = ("grpc", "grpc._cython.cygrpc", "grpc._server", "grpc._common", "grpc.aio")
_UNDECODABLE = "Invalid encoding on %s"


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and authorization values masked."""
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(rf"\1{REDACTED}", text)
    if "bearer" in lowered:
        text = _BEARER.sub(rf"\1{REDACTED}", text)
    if "osk_" in text:
        text = _KEY.sub(rf"\1{REDACTED}", text)
    return text


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message, exception and stack text; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("grpc"):
            _withhold_raw_values(record)
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _withhold_raw_values(record: logging.LogRecord) -> None:
    """gRPC logs undecodable metadata as raw bytes: any value at all, so none is shown."""
    if record.msg == _UNDECODABLE:
        # A caller's mistake, not the server's error: no traceback, and no value.
        record.msg = "a call sent a metadata value that is not UTF-8 (value withheld)"
        record.args = None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    elif isinstance(record.args, tuple) and any(isinstance(a, bytes) for a in record.args):
        record.args = tuple(
            f"[{len(a)} bytes withheld]" if isinstance(a, bytes) else a for a in record.args
        )


_FILTER = SecretFilter()


def install() -> None:
    """Mask secrets in every log line: on gRPC's loggers and the root logger's handlers.
    Call once logging is configured; calling again is harmless."""
    names = {*GRPC_LOGGERS}
    names.update(name for name in logging.root.manager.loggerDict if name.startswith("grpc"))
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
