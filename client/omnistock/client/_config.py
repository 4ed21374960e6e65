"""What both clients share: retry policy, deadlines, channel options, credentials."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import grpc

DEFAULT_TIMEOUT = 10.0

# Reads, and writes that carry what makes a repeat harmless: CreateReservation an
# idempotency key (the SDK sets one), a reservation's state moves the reservation id and
# its target state (a repeat answers with the reservation as it is). Other writes are
# not retried: a repeated delta would count twice, and the rest carry no key.
IDEMPOTENT = frozenset(
    {
        "GetLocation", "ListLocations", "GetAvailability", "BatchGetAvailability",
        "SearchNearby", "GetFulfillmentOptions", "GetFeedStatus", "ListFeedStatus",
        "GetReservation", "ListReservations",
        "CreateReservation", "CommitReservation", "FulfillReservation", "ReleaseReservation",
    }
)  # fmt: skip
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

# Default deadlines: reads answer in milliseconds; writes may wait on a database lock.
METHOD_TIMEOUTS = {
    "UpsertLocations": 30.0,
    "ApplyStockUpdates": 30.0,
    "CreateReservation": 30.0,
    "ExtendReservation": 30.0,
    "CommitReservation": 30.0,
    "FulfillReservation": 30.0,
    "ReleaseReservation": 30.0,
}

# Keepalive pings while calls are open (a watch can be quiet for its heartbeat interval);
# the server accepts one every 10 s.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


@dataclass(frozen=True, kw_only=True)
class Retry:
    """Exponential backoff with jitter: ``attempts`` tries in all, waiting ``initial``,
    then ``multiplier`` times longer each time, at most ``maximum`` seconds (each wait
    drawn between half and all of that). A server's RetryInfo, when longer, wins.

    >>> Retry(attempts=1)  # no retries
    Retry(attempts=1, initial=0.1, maximum=5.0, multiplier=2.0)
    """

    attempts: int = 4
    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0

    def delay(self, attempt: int, retry_after: timedelta | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (attempt counts from 1)."""
        backoff = min(self.maximum, self.initial * self.multiplier ** (attempt - 1))
        wait = backoff * (0.5 + random.random() / 2)
        if retry_after is not None:
            wait = max(wait, retry_after.total_seconds())
        return wait


DEFAULT_RETRY = Retry()


def channel_credentials(
    *,
    tls: bool,
    root_certificates: bytes | None,
    client_certificate: tuple[bytes, bytes] | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials, or None for plaintext. ``client_certificate`` is (chain, key)."""
    if not (tls or root_certificates is not None or client_certificate is not None):
        return None
    chain, key = client_certificate or (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates, private_key=key, certificate_chain=chain
    )


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def method_name(method: object) -> str:
    """The RPC's short name (``GetAvailability``) from a stub's callable."""
    raw = getattr(method, "_method", b"")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text.rsplit("/", 1)[-1]
