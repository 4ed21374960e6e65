"""What the synchronous Client does for every method: the channel, deadlines, retries,
metadata, and turning failures into typed errors. The per-method surface is generated
(``_client.py``); this is the part that is not per method."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from omnistock.client._config import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    NO_RETRY,
    RETRYABLE_CODES,
    Retry,
    auth_metadata,
    channel_credentials,
    channel_options,
)
from omnistock.client._exceptions import from_rpc_error
from omnistock.client._streams import RequestStream, start
from omnistock.client._tracing import trace_metadata

Metadata = Sequence[tuple[str, str]]
Request = TypeVar("Request")
Response = TypeVar("Response")
# A method's default deadline: the client's ``timeout``, a number of seconds, or none.
CLIENT_TIMEOUT = "client"
MethodTimeout = float | str | None


class Transport:
    """The channel and call machinery of :class:`Client`."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        metadata: Metadata = (),
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_certificate: tuple[bytes, bytes] | None = None,
        retry: Retry = DEFAULT_RETRY,
        channel: grpc.Channel | None = None,
    ) -> None:
        """``api_key``: sent as ``authorization: Bearer <key>`` on every call. ``tls``: use
        TLS (implied by ``root_certificates``, the CA to trust instead of the system's, and
        by ``client_certificate``, a (certificate chain, private key) pair in PEM for mTLS).
        ``retry``: the backoff for idempotent calls that fail UNAVAILABLE or
        RESOURCE_EXHAUSTED (``Retry(attempts=1)`` turns it off). ``timeout``: the deadline
        of reads, in seconds (writes get 30 s, streams none, unless a call says otherwise).
        ``channel``: bring your own (then the TLS options do not apply)."""
        self.target = target
        self.timeout = timeout
        self.retry = retry
        self.metadata = (*auth_metadata(api_key), *metadata)
        self._owns_channel = channel is None
        if channel is None:
            credentials = channel_credentials(
                tls=tls, root_certificates=root_certificates, client_certificate=client_certificate
            )
            channel = (
                grpc.insecure_channel(target, options=channel_options())
                if credentials is None
                else grpc.secure_channel(target, credentials, options=channel_options())
            )
        self._channel = channel
        self._bind(channel)

    def _bind(self, channel: grpc.Channel) -> None:
        """Make the service stubs (the generated client does)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel, if the client opened it."""
        if self._owns_channel:
            self._channel.close()

    def _metadata(self, metadata: Metadata) -> tuple[tuple[str, str], ...]:
        return (*self.metadata, *trace_metadata(), *metadata)

    def _timeout(self, timeout: float | None, default: MethodTimeout) -> float | None:
        if timeout is not None:
            return timeout
        if default == CLIENT_TIMEOUT:
            return self.timeout
        return float(default) if default is not None else None

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        *,
        timeout: float | None,
        metadata: Metadata,
        retry: Retry | None,
        default_timeout: MethodTimeout,
        idempotent: bool,
    ) -> Response:
        """One call, retried by ``retry`` (the client's for idempotent methods, else
        none). ``timeout`` bounds the whole call, retries and waits included."""
        policy = retry if retry is not None else (self.retry if idempotent else NO_RETRY)
        seconds = self._timeout(timeout, default_timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        headers = self._metadata(metadata)
        attempt = 1
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return method(request, timeout=left, metadata=headers)
            except grpc.RpcError as error:
                failure = from_rpc_error(error)
                if attempt >= policy.attempts or failure.code not in RETRYABLE_CODES:
                    raise failure from None
            wait = policy.delay(attempt, failure.retry_after)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise failure
            time.sleep(wait)
            attempt += 1

    def _server_stream(
        self,
        method: grpc.UnaryStreamMultiCallable[Request, Response],
        request: Request,
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> Iterator[Response]:
        """The responses of a server stream; a failure raises a typed error."""
        call: Any = method(
            request,
            timeout=self._timeout(timeout, default_timeout),
            metadata=self._metadata(metadata),
        )
        try:
            yield from call
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()  # nothing once the call is over; ends it if the caller stopped early

    def _client_stream(
        self,
        method: grpc.StreamUnaryMultiCallable[Request, Response],
        stream: RequestStream[Request],
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> Response:
        """The one response to a stream of requests; the caller's exception from the
        stream is raised as it is, after the call ends as the stream's rule says."""
        call = start(
            method.future,
            stream,
            timeout=self._timeout(timeout, default_timeout),
            metadata=self._metadata(metadata),
        )
        try:
            response: Response = call.result()
            return response
        except (grpc.RpcError, grpc.FutureCancelledError) as error:
            failure = stream.failure(error)
        except BaseException:  # KeyboardInterrupt, say: the stream must not go on
            call.cancel()
            raise
        raise failure

    def _bidi_stream(
        self,
        method: grpc.StreamStreamMultiCallable[Request, Response],
        stream: RequestStream[Request],
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> Iterator[Response]:
        """The responses to a stream of requests, in order; the caller's exception from
        the stream is raised as it is, after the responses to what was sent before it."""
        call: Any = start(
            method,
            stream,
            timeout=self._timeout(timeout, default_timeout),
            metadata=self._metadata(metadata),
        )
        failure: BaseException | None
        try:
            yield from call
        except grpc.RpcError as error:
            failure = stream.failure(error)
        else:
            failure = stream.failure_after_end()
        finally:
            call.cancel()  # nothing once the call is over; ends it if the caller stopped early
        if failure is not None:
            raise failure
