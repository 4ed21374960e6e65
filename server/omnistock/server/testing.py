"""Run a real omnistock server in a background thread, for tests and examples.

with InProcessServer(database_url="sqlite:///:memory:") as server:
    client = Client(server.target)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from types import TracebackType

from omnistock.server.app import OmnistockServer, utc_now
from omnistock.server.config import ServerConfig


class InProcessServer:
    """An OmnistockServer on its own event loop thread, listening on a free local port.

    Without a ``config`` it runs insecure (no API keys), as a test server usually should;
    pass a ServerConfig to test keys, scopes and TLS.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        database_url: str | None = None,
        demo: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        config = config or ServerConfig(listen="127.0.0.1:0", insecure=True)
        if database_url is not None:
            config = replace(config, database_url=database_url)
        if demo:
            config = replace(config, demo=True)
        self.config = config
        self._clock = clock
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="omnistock-server", daemon=True)
        self.server: OmnistockServer | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> InProcessServer:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            # asyncio.run also cancels whatever the server left (streams cut at stop).
            asyncio.run(self._main())
        except BaseException as error:  # surfaced to start()
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = OmnistockServer(self.config, clock=self._clock)
        self.port = await self.server.start()
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(grace=1.0)

    def add_channel(
        self,
        channel_id: str,
        name: str,
        location_ids: list[str],
        *,
        protection: dict[str, int] | None = None,
        sells_incoming: bool = False,
    ) -> None:
        """A channel selling from a group (``{channel_id}-group``) of these locations,
        written straight to the server's database (for seeds and tests)."""
        from omnistock.server.domain.channels import Channel, LocationGroup
        from omnistock.server.store.channels import ChannelRepository

        assert self.server is not None
        repository = ChannelRepository(self.server.engine)
        now = self._clock()
        group = f"{channel_id}-group"
        repository.upsert_groups([LocationGroup(group, name, frozenset(location_ids))], now=now)
        repository.upsert_channels(
            [
                Channel(
                    channel_id,
                    name,
                    group,
                    protection=dict(protection or {}),
                    sells_incoming=sells_incoming,
                )
            ],
            now=now,
        )

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
