"""Page tokens: opaque, signed, and bound to the caller and the request.

A token carries the id of the last item of the page it ends (an item the caller was
shown: lists filter by scope before they page) and an HMAC-SHA256 over that id, the list
method, the caller's key id and the request's filters. The key is the database's
``page_tokens`` secret (store.secrets), so every process and replica on one database
reads the others' tokens. A token that was altered or made up, or that comes from another
key or with other filters, is INVALID_ARGUMENT with a violation on ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from omnistock.server.domain.errors import Violations
from omnistock.server.service.limits import DEFAULT_LIST_PAGE_SIZE, MAX_LIST_PAGE_SIZE
from omnistock.server.transport.auth import principal

SECRET_NAME = "page_tokens"
_MAC_BYTES = 16  # 128 bits: a token cannot be forged by guessing


@dataclass(frozen=True, slots=True)
class Page:
    """A checked List request's paging: continue after ``after`` (or from the start),
    at most ``size`` items; ``binding`` is what its tokens are bound to."""

    after: str
    size: int
    binding: bytes


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def read(self, v: Violations, page_size: int, page_token: str, *filters: object) -> Page:
        """The paging of a List request of the calling principal; ``filters``: what the
        request narrows the list by, which a token may not be moved to another of."""
        v.check(
            0 <= page_size <= MAX_LIST_PAGE_SIZE,
            "page_size",
            f"must be within [0, {MAX_LIST_PAGE_SIZE}]",
        )
        binding = json.dumps([principal().key_id, *map(str, filters)]).encode()
        after = ""
        if page_token:
            found = self._open(page_token, binding)
            if found is None:
                v.add("page_token", "is not a token from a previous response to this request")
            else:
                after = found
        return Page(after, page_size or DEFAULT_LIST_PAGE_SIZE, binding)

    def next_token(self, page: Page, after: str | None) -> str:
        """The token for the page after ``after`` (the last item shown); "" when the list
        has ended."""
        if after is None:
            return ""
        payload = after.encode()
        raw = self._mac(page.binding, payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _open(self, token: str, binding: bytes) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
            if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, self._mac(binding, payload)):
                return None
            return payload.decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None

    def _mac(self, binding: bytes, payload: bytes) -> bytes:
        message = binding + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]
