"""Watch resumption: a WatchAvailability stream that reconnects after a disconnect with
the last resume token, so the next message is a CHANGE of only what changed meanwhile."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import grpc
from grpc import aio
from omnistock.client._exceptions import from_rpc_error
from omnistock.client._types import WatchAvailabilityResponse
from omnistock.v1 import availability_pb2

Metadata = Sequence[tuple[str, str]]


class AvailabilityWatch:
    """An open WatchAvailability stream that resumes after a disconnect."""

    RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE,)

    def __init__(
        self,
        method: Callable[..., Any],
        request: availability_pb2.WatchAvailabilityRequest,
        *,
        metadata: Metadata,
        reconnect: bool,
    ) -> None:
        self._method = method
        self._request = request
        self._metadata = tuple(metadata)
        self._reconnect = reconnect
        self._cancelled = False
        self._call: Any = None
        self.resume_token = request.resume_token
        self.reconnects = 0

    def __enter__(self) -> AvailabilityWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __iter__(self) -> Iterator[WatchAvailabilityResponse]:
        delay = 0.1
        while not self._cancelled:
            request = availability_pb2.WatchAvailabilityRequest()
            request.CopyFrom(self._request)
            request.resume_token = self.resume_token
            self._call = self._method(request, metadata=self._metadata)
            try:
                for message in self._call:
                    self.resume_token = message.resume_token
                    delay = 0.1
                    yield message
                return
            except grpc.RpcError as error:
                if self._cancelled:
                    return
                code = error.code() if isinstance(error, grpc.Call) else None
                if not self._reconnect or code not in self.RECONNECT_CODES:
                    raise from_rpc_error(error) from None
            self.reconnects += 1
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)


class AsyncAvailabilityWatch:
    """An open WatchAvailability stream for asyncio that resumes after a disconnect."""

    RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE,)

    def __init__(
        self,
        method: Callable[..., Any],
        request: availability_pb2.WatchAvailabilityRequest,
        *,
        metadata: Metadata,
        reconnect: bool,
    ) -> None:
        self._method = method
        self._request = request
        self._metadata = tuple(metadata)
        self._reconnect = reconnect
        self._cancelled = False
        self._call: Any = None
        self.resume_token = request.resume_token
        self.reconnects = 0

    async def __aenter__(self) -> AsyncAvailabilityWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[WatchAvailabilityResponse]:
        delay = 0.1
        while not self._cancelled:
            request = availability_pb2.WatchAvailabilityRequest()
            request.CopyFrom(self._request)
            request.resume_token = self.resume_token
            self._call = self._method(request, metadata=self._metadata)
            try:
                async for message in self._call:
                    self.resume_token = message.resume_token
                    delay = 0.1
                    yield message
                return
            except asyncio.CancelledError:
                if self._cancelled:
                    return
                raise
            except grpc.RpcError as error:
                if self._cancelled:
                    return
                code = error.code() if isinstance(error, aio.AioRpcError) else None
                if not self._reconnect or code not in self.RECONNECT_CODES:
                    raise from_rpc_error(error) from None
            self.reconnects += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
