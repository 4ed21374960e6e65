"""A web shop's product page: "can I buy it online, or pick it up near me?", then "add to
basket" as a network hold.

python client/examples/product_page.py --target HOST:PORT [--api-key KEY]
    [--channel web] [--sku PHONE-1] [--lat 52.37 --lon 4.89]

Searches through the web channel (its stores only, each keeping its protected units for
walk-in shoppers), shows the ship option and the stores with pickup, then holds one unit
through the channel for shipping and one for pickup near the shopper, and gives both back.
"""

from __future__ import annotations

import argparse

from omnistock.client import (
    ChannelMethod,
    Client,
    FailedPreconditionError,
    ReservationMethod,
    StockStatus,
    UnavailableError,
    origin,
)


def page(client: Client, channel: str, sku: str, lat: float, lon: float) -> list[str]:
    """What the page shows, as lines of text."""
    said = []
    here = origin(latitude=lat, longitude=lon)
    found = client.search_nearby({sku: 1}, here, radius_km=50, limit=5, channel=channel)
    if found.HasField("ship"):
        (line,) = found.ship.lines
        said.append(
            f"ship: {StockStatus(line.status).name} from {found.ship.location_id},"
            f" delivered by {found.ship.delivery_date}"
        )
    for store in found.locations:
        (line,) = store.lines
        later = f", {line.available_from_text}" if line.available_from_text else ""
        said.append(
            f"pickup at {store.name}: {StockStatus(line.status).name},"
            f" ready {store.ready_by_text}{later}"
        )
    holds = []
    for method in (ChannelMethod.SHIP, ChannelMethod.PICKUP):
        try:
            hold = client.create_reservation(
                "", {sku: 1}, method=ReservationMethod.CHECKOUT, channel=channel,
                channel_method=method, origin=here,
            )  # fmt: skip
        except FailedPreconditionError:
            said.append(f"{method.name.lower()}: cannot be held now")
            continue
        holds.append(hold)
        said.append(f"{method.name.lower()}: held at {hold.location_id}")
    for hold in holds:
        client.release_reservation(hold.reservation_id)
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--channel", default="web")
    parser.add_argument("--sku", default="PHONE-1")
    parser.add_argument("--lat", type=float, default=52.37)
    parser.add_argument("--lon", type=float, default=4.89)
    args = parser.parse_args()
    with Client(args.target, api_key=args.api_key) as client:
        try:
            for line in page(client, args.channel, args.sku, args.lat, args.lon):
                print(line)
        except UnavailableError:
            raise SystemExit(f"no omnistock server at {args.target}") from None


if __name__ == "__main__":
    main()
