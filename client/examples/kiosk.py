"""A store kiosk: show live stock of some products, and keep it true.

python client/examples/kiosk.py --target HOST:PORT --store NL-AMS-01 --sku PHONE-1
    [--api-key KEY] [--events N]

Watches with the asyncio client; reconnects by itself after a dropped connection and
resumes where it was. Stops after N changes (0: never).
"""

from __future__ import annotations

import argparse
import asyncio

from omnistock.client import AsyncClient, Exposure, StockStatus, WatchEventKind


async def show(target: str, api_key: str | None, store: str, skus: list[str], events: int) -> int:
    """Print the board, then each change; returns how many changes it saw."""
    changes = 0
    async with AsyncClient(target, api_key=api_key) as client:
        watch = client.watch_availability(
            [(sku, store) for sku in skus], exposure=Exposure.BANDED, heartbeat_seconds=30
        )
        async with watch:
            async for event in watch:
                kind = WatchEventKind(event.kind)
                if kind is WatchEventKind.HEARTBEAT:
                    continue
                for a in event.availabilities:
                    hint = f" ({a.quantity_hint})" if a.quantity_hint else ""
                    print(
                        f"{a.sku} at {a.location_id}: {StockStatus(a.status).name}{hint}",
                        flush=True,
                    )
                if kind is WatchEventKind.CHANGE:
                    changes += 1
                    if changes == events:
                        break
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--store", default="NL-AMS-01")
    parser.add_argument("--sku", action="append")
    parser.add_argument("--events", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(show(args.target, args.api_key, args.store, args.sku or ["PHONE-1"], args.events))


if __name__ == "__main__":
    main()
