"""What both clients share: retry policy, deadlines, channel options, credentials."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import grpc
from omnistock.client._version import USER_AGENT

DEFAULT_TIMEOUT = 10.0

# Which methods are retried by default, and their default deadlines, are per method: they
# live in protos/omnistock/v1/sdk.toml and the generated clients carry them. A call is
# retried only on these codes.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

# Keepalive pings while calls are open (a watch can be quiet for its heartbeat interval);
# the server accepts one every 10 s.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


def channel_options() -> list[tuple[str, int | str]]:
    """CHANNEL_OPTIONS and the user agent. gRPC drops a ``user-agent`` sent in call
    metadata; ``grpc.primary_user_agent`` puts it before gRPC's own."""
    return [*CHANNEL_OPTIONS, ("grpc.primary_user_agent", USER_AGENT)]


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
NO_RETRY = Retry(attempts=1)


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
