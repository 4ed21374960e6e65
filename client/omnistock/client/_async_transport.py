"""What the AsyncClient does for every method, on grpc.aio: the channel, deadlines,
retries, metadata, and typed errors. The per-method surface is generated
(``_async_client.py``); this is the part that is not per method."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from grpc import aio
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
from omnistock.client._streams import RequestStream, start, task_cancelled
from omnistock.client._tracing import trace_metadata
from omnistock.client._transport import CLIENT_TIMEOUT, Metadata, MethodTimeout

Request = TypeVar("Request")
Response = TypeVar("Response")


class AsyncTransport:
    """The channel and call machinery of :class:`AsyncClient`."""

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
        channel: aio.Channel | None = None,
    ) -> None:
        """The options are Client's; ``channel`` is a ``grpc.aio.Channel``."""
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
                aio.insecure_channel(target, options=channel_options())
                if credentials is None
                else aio.secure_channel(target, credentials, options=channel_options())
            )
        self._channel = channel
        self._bind(channel)

    def _bind(self, channel: aio.Channel) -> None:
        """Make the service stubs (the generated client does)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel, if the client opened it."""
        if self._owns_channel:
            await self._channel.close()

    def _metadata(self, metadata: Metadata) -> tuple[tuple[str, str], ...]:
        return (*self.metadata, *trace_metadata(), *metadata)

    def _timeout(self, timeout: float | None, default: MethodTimeout) -> float | None:
        if timeout is not None:
            return timeout
        if default == CLIENT_TIMEOUT:
            return self.timeout
        return float(default) if default is not None else None

    async def _unary(
        self,
        method: aio.UnaryUnaryMultiCallable[Request, Response],
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
                return await method(request, timeout=left, metadata=headers)
            except grpc.RpcError as error:
                failure = from_rpc_error(error)
                if attempt >= policy.attempts or failure.code not in RETRYABLE_CODES:
                    raise failure from None
            wait = policy.delay(attempt, failure.retry_after)
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise failure
            await asyncio.sleep(wait)
            attempt += 1

    async def _server_stream(
        self,
        method: aio.UnaryStreamMultiCallable[Request, Response],
        request: Request,
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> AsyncIterator[Response]:
        """The responses of a server stream; a failure raises a typed error."""
        call: Any = method(
            request,
            timeout=self._timeout(timeout, default_timeout),
            metadata=self._metadata(metadata),
        )
        try:
            async for response in call:
                yield response
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def _client_stream(
        self,
        method: aio.StreamUnaryMultiCallable[Request, Response],
        stream: RequestStream[Request],
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> Response:
        """The one response to a stream of requests; the caller's exception from the
        stream is raised as it is, after the call ends as the stream's rule says."""
        call: Any = start(
            method,
            stream,
            timeout=self._timeout(timeout, default_timeout),
            metadata=self._metadata(metadata),
        )
        try:
            response: Response = await call
            return response
        except (grpc.RpcError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and task_cancelled():
                raise
            failure = stream.failure(error)
        raise failure

    async def _bidi_stream(
        self,
        method: aio.StreamStreamMultiCallable[Request, Response],
        stream: RequestStream[Request],
        *,
        timeout: float | None,
        metadata: Metadata,
        default_timeout: MethodTimeout,
    ) -> AsyncIterator[Response]:
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
            async for response in call:
                yield response
        except grpc.RpcError as error:
            failure = stream.failure(error)
        else:
            failure = stream.failure_after_end()
        finally:
            call.cancel()
        if failure is not None:
            raise failure
