"""A mobile app's backend: "is it near me, or should it be shipped?"

python client/examples/mobile_backend.py --target HOST:PORT [--api-key KEY]
    [--sku PHONE-1 --sku CASE-1] [--lat 52.37 --lon 4.89]

Prints the stores nearest the shopper with the whole cart, and the ranked ways to get it.
"""

from __future__ import annotations

import argparse

from omnistock.client import (
    Client,
    FulfillmentMethod,
    StockStatus,
    UnavailableError,
    cart,
    origin,
)


def answer(client: Client, skus: list[str], lat: float, lon: float) -> list[str]:
    """What the app shows, as lines of text."""
    lines = []
    basket = cart(dict.fromkeys(skus, 1))
    here = origin(latitude=lat, longitude=lon)
    nearby = client.search_nearby(basket, here, radius_km=50, limit=5)
    for store in nearby.locations:
        states = ", ".join(f"{a.sku} {StockStatus(a.status).name}" for a in store.lines)
        ready = f", ready {store.ready_by_text}" if store.has_all else ""
        lines.append(f"{store.name}: {store.distance_km:.1f} km, {states}{ready}")
    if nearby.HasField("ship"):
        lines.append(f"or shipped from {nearby.ship.location_id} by {nearby.ship.delivery_date}")
    options = client.get_fulfillment_options(basket, here, radius_km=50)
    for rank, option in enumerate(options.options, 1):
        method = FulfillmentMethod(option.method).name
        where = option.pickup_location_id or option.ship_location_id
        lines.append(
            f"option {rank}: {method} via {where}, complete by {option.complete_by.ToJsonString()}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--sku", action="append")
    parser.add_argument("--lat", type=float, default=52.37)
    parser.add_argument("--lon", type=float, default=4.89)
    args = parser.parse_args()
    with Client(args.target, api_key=args.api_key) as client:
        try:
            for line in answer(client, args.sku or ["PHONE-1", "CASE-1"], args.lat, args.lon):
                print(line)
        except UnavailableError:
            raise SystemExit(f"no omnistock server at {args.target}") from None


if __name__ == "__main__":
    main()
