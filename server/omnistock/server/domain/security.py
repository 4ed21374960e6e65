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
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from omnistock.server.domain.errors import DomainError, FieldViolation, InvalidArgument
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


# The shortest and longest delay a RetryInfo names: a refusal always says to wait (a bucket
# a hair short of its next token would otherwise name a delay that rounds to nothing).
MIN_RETRY_AFTER_SECONDS = 0.001
MAX_RETRY_AFTER_SECONDS = 3600.0


class RateLimited(DomainError):
    """Over a rate limit: ``retry_after`` (seconds, from MIN_RETRY_AFTER_SECONDS to
    MAX_RETRY_AFTER_SECONDS) says when to try again."""

    reason = "RATE_LIMITED"

    def __init__(self, name: str, retry_after: float, *, reason: str | None = None) -> None:
        # max/min also turn a NaN into a delay a RetryInfo can carry.
        retry_after = min(max(MIN_RETRY_AFTER_SECONDS, retry_after), MAX_RETRY_AFTER_SECONDS)
        super().__init__(
            f"{name} is over its rate limit; retry in {retry_after:.2f} s", reason=reason
        )
        self.retry_after = retry_after


# A key's rate limit: tokens a second and the bucket's size.
MIN_RATE_PER_SECOND = 0.001
MAX_RATE_PER_SECOND = 1_000_000_000.0
MAX_BURST = 1_000_000_000


def rate_limit_violations(rate_per_second: object, burst: object) -> list[FieldViolation]:
    """What is wrong with a key's limits: a rate of 0, a negative one or NaN would make
    every call fail or never fail; an empty bucket refuses everything."""
    violations = []
    if (
        not isinstance(rate_per_second, int | float)
        or isinstance(rate_per_second, bool)
        or not math.isfinite(rate_per_second)
        or not MIN_RATE_PER_SECOND <= rate_per_second <= MAX_RATE_PER_SECOND
    ):
        violations.append(
            FieldViolation(
                "rate",
                f"must be a number from {MIN_RATE_PER_SECOND:g} to {MAX_RATE_PER_SECOND:,.0f}"
                " calls a second",
            )
        )
    if not isinstance(burst, int) or isinstance(burst, bool) or not 1 <= burst <= MAX_BURST:
        violations.append(
            FieldViolation("burst", f"must be a whole number from 1 to {MAX_BURST:,}")
        )
    return violations


def check_rate_limit(rate_per_second: float, burst: int) -> None:
    """Raise InvalidArgument unless the limits are ones a token bucket can keep."""
    violations = rate_limit_violations(rate_per_second, burst)
    if violations:
        raise InvalidArgument(violations, reason="INVALID_RATE_LIMIT")


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
    # None: every channel. A key bound to channels sees those channels' answers and,
    # through ``locations``, nothing of locations outside their groups.
    channels: frozenset[str] | None = None

    @property
    def limits_valid(self) -> bool:
        """False for a key stored with limits no bucket can keep (a rate of 0, say)."""
        return self.rate_per_second == float("inf") or not rate_limit_violations(
            self.rate_per_second, self.burst
        )

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

    def require_channels(self, channel_ids: Iterable[str]) -> None:
        """A key bound to channels may ask for those channels only (PERMISSION_DENIED,
        CHANNEL_NOT_IN_SCOPE, whether or not the channel exists)."""
        if self.channels is None:
            return
        outside = sorted({c for c in channel_ids if c not in self.channels})
        if outside:
            raise PermissionDenied(
                f"{self.name} may not use channel {outside[0]}",
                reason="CHANNEL_NOT_IN_SCOPE",
            )

    def require_exposure(self, exposure: Exposure) -> None:
        if exposure is Exposure.EXACT and self.exposure is not Exposure.EXACT:
            raise PermissionDenied(
                f"{self.name} may see banded availability only; ask without EXACT",
                reason="EXPOSURE_NOT_GRANTED",
            )


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An API key as stored: the principal it names and its secret's hash (the secret
    itself is shown once, when the key is made, and never kept)."""

    principal: Principal
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None

    def admits(self, secret: str) -> bool:
        """Whether ``secret`` opens this key: it matches, and the key is neither revoked
        nor stored with limits no token bucket can keep."""
        return (
            self.revoked_at is None
            and self.principal.limits_valid
            and secret_matches(secret, self.secret_hash)
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write call in the audit log: when, by whom (principal name and key id), which
    method, and what its servicer noted of what it wrote."""

    at: datetime
    principal: str
    key_id: str
    method: str
    detail: dict[str, object]


KEY_PREFIX = "osk"
_BEARER = re.compile(r"bearer\s+", re.IGNORECASE)


def new_key() -> tuple[str, str, str]:
    """A new API key: (key id, secret, the key as the caller sends it). Only the secret's
    hash is stored: the key is 160 random bits, so one SHA-256 is enough (a slow password
    hash protects guessable secrets; these are not)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(20)
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_key(text: str) -> str:
    """The key as it is stored and cached: surrounding whitespace and a ``Bearer`` scheme
    dropped, so ``"Bearer osk_..."``, ``"osk_... "`` and ``"osk_..."`` are one key.

    >>> normalise_key("  Bearer  osk_3e0186_s3cr3t ")
    'osk_3e0186_s3cr3t'
    """
    text = text.strip()
    bearer = _BEARER.match(text)
    return text[bearer.end() :] if bearer else text


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of ``osk_<id>_<secret>``, or ``Bearer osk_...``; None if malformed."""
    parts = normalise_key(text).split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
