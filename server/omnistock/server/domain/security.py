"""Who may call what: principals, roles, scopes and exposure.

A principal is named by an API key. It has roles (read, feed, reserve, admin), an
optional scope of locations (a store's feeder may write only its own; a partner may
see only some), the most exact exposure it may see, and a rate limit.

Every method needs one role; admin holds them all. Which role, and how the scope
applies to each method, is one table: omnistock.server.transport.scope. A location
outside the principal's scope is PERMISSION_DENIED whether or not it exists, so a
caller cannot probe for ids it may not see.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from omnistock.server.domain.errors import DomainError
from omnistock.server.domain.stock import Exposure


class Role(enum.Enum):
    READ = "read"
    FEED = "feed"
    RESERVE = "reserve"
    ADMIN = "admin"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class RateLimited(DomainError):
    reason = "RATE_LIMITED"

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name} is over its rate limit; retry in {retry_after:.2f} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    roles: frozenset[Role]
    # None: every location.
    locations: frozenset[str] | None = None
    exposure: Exposure = Exposure.BANDED
    rate_per_second: float = 100.0
    burst: int = 200

    def has(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles

    def may_see(self, location_id: str) -> bool:
        return self.locations is None or location_id in self.locations

    def require_locations(self, location_ids: Iterable[str]) -> None:
        if self.locations is None:
            return
        outside = sorted({i for i in location_ids if i not in self.locations})
        if outside:
            raise PermissionDenied(
                f"{self.name} may not use location {outside[0]}"
                + (f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""),
                reason="LOCATION_NOT_IN_SCOPE",
            )

    def require_exposure(self, exposure: Exposure) -> None:
        if exposure is Exposure.EXACT and self.exposure is not Exposure.EXACT:
            raise PermissionDenied(
                f"{self.name} may see banded availability only; ask without EXACT",
                reason="EXPOSURE_NOT_GRANTED",
            )


KEY_PREFIX = "osk"


def new_key() -> tuple[str, str, str]:
    """A new API key: (key id, secret, the key as the caller sends it). Only the secret's
    hash is stored: the key is 160 random bits, so one SHA-256 is enough (a slow password
    hash protects guessable secrets; these are not)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(20)
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of ``osk_<id>_<secret>``, or ``Bearer osk_...``; None if malformed."""
    text = text.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    parts = text.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
