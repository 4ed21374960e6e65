"""Ask omnistock where a product is, through the SDK.

python client/examples/quickstart.py --target 127.0.0.1:50051 [--sku ELEC-10000]
"""

from __future__ import annotations

import argparse
import time

from omnistock.client import (
    ChannelMethod,
    Client,
    Exposure,
    LocationKind,
    StockStatus,
    UnavailableError,
    cart,
    origin,
)


def wait_for(client: Client, seconds: float) -> None:
    """Retry a cheap read until the server answers (it may still be starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            next(client.list_locations(page_size=1), None)
            return
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--sku", default="ELEC-10000")
    parser.add_argument("--api-key", help="for a server that checks keys")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the server")
    args = parser.parse_args()

    with Client(args.target, api_key=args.api_key) as client:
        wait_for(client, args.wait)
        stores = {loc.id: loc for loc in client.list_locations(kind=LocationKind.STORE)}
        print(f"{len(stores)} stores. Where is {args.sku}? (banded, as a shopper sees it)")
        answers = client.get_availability(args.sku, list(stores)[:8])
        for answer in answers:
            status = StockStatus(answer.status).name
            hint = f" ({answer.quantity_hint})" if answer.quantity_hint else ""
            name = stores[answer.location_id].name
            print(f"  {name:<32} {status:<13}{hint:<6} confidence {answer.confidence:.2f}")

        print(f"\nNearest stores to postal code 1012 PH with {args.sku}, and when it is ready:")
        nearby = client.search_nearby(cart({args.sku: 1}), origin(postal_code="1012 PH"), limit=3)
        for store in nearby.locations:
            print(f"  {store.name:<32} {store.distance_km:5.1f} km   ready {store.ready_by_text}")
        if nearby.HasField("ship"):
            print(
                f"  or shipped from {nearby.ship.location_id}, delivered {nearby.ship.delivery_date}"
            )

        print("\nThrough the web channel (every store and warehouse, stores keep units back):")
        for method in (ChannelMethod.SHIP, ChannelMethod.PICKUP):
            web = client.get_channel_availability(args.sku, "web", method=method)
            since = "now" if web.fulfillable else (web.available_from_text or "not to order")
            print(
                f"  {method.name.lower():<7} {StockStatus(web.status).name:<13}"
                f"{web.quantity_hint:<6} {since}"
            )

        warehouses = [loc.id for loc in client.list_locations(kind=LocationKind.WAREHOUSE)]
        print("\nWarehouse stock (exact, as a store associate sees it):")
        for answer in client.get_availability(args.sku, warehouses, exposure=Exposure.EXACT):
            print(
                f"  {answer.location_id:<12} on hand {answer.on_hand:>4}  reserved {answer.reserved}"
                f"  safety {answer.safety_stock}  available to sell {answer.available_to_sell}"
            )


if __name__ == "__main__":
    main()
