"""A buyer's incoming-supply feed: purchase orders and transfers, as they are placed and
changed, then a snapshot of what a warehouse still expects.

python client/examples/incoming_feed.py --target HOST:PORT [--api-key KEY]
    [--warehouse NL-WH-01] [--store NL-AMS-01]

Each line is keyed by (location, sku, line id) and keeps its newest update, so the feed
may resend, repeat or deliver late: a late copy of an older update changes nothing. A
snapshot replaces a location's lines as of its time; the lines it leaves out (delivered
or cancelled orders) drop out. A line counts as incoming through its expected date at
the location.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta

from omnistock.client import Client


def run(client: Client, warehouse: str, store: str) -> list[str]:
    said = []
    now = datetime.now(UTC)
    today = now.date()

    def due(days: int) -> date:
        return today + timedelta(days=days)

    placed = now - timedelta(minutes=10)
    orders = client.apply_incoming_updates(
        [
            {"location_id": warehouse, "sku": "PHONE-1", "line_id": "PO-1001-1", "quantity": 50,
             "expected_date": due(10), "source_updated_at": placed},
            {"location_id": warehouse, "sku": "CASE-1", "line_id": "PO-1002-1", "quantity": 200,
             "expected_date": due(5), "source_updated_at": placed},
        ]
    )  # fmt: skip
    said.append(
        f"purchase orders: {orders.applied_count} applied, {orders.stale_count} stale,"
        f" {orders.rejected_count} rejected"
    )
    transfer = client.apply_incoming_updates(
        [{"location_id": store, "sku": "PHONE-1", "line_id": "TR-77-1", "quantity": 6,
          "expected_date": due(2), "source_updated_at": placed}]
    )  # fmt: skip
    said.append(f"transfer to {store}: {transfer.applied_count} applied")

    # The supplier confirms 40 units two days later; a late copy of the order comes after.
    changed = client.apply_incoming_updates(
        [
            {"location_id": warehouse, "sku": "PHONE-1", "line_id": "PO-1001-1", "quantity": 40,
             "expected_date": due(12), "source_updated_at": now - timedelta(minutes=5)},
            {"location_id": warehouse, "sku": "PHONE-1", "line_id": "PO-1001-1", "quantity": 50,
             "expected_date": due(10), "source_updated_at": placed},
        ]
    )  # fmt: skip
    said.append(f"supplier change: {changed.applied_count} applied, {changed.stale_count} stale")

    # The warehouse's system sends what it still expects: the cases arrived, a new order.
    snapshot = client.import_incoming_snapshot(
        warehouse,
        now - timedelta(minutes=1),
        [("PHONE-1", "PO-1001-1", 40, due(12)), ("CHARGER-1", "PO-1003-1", 80, due(20))],
    )
    said.append(
        f"{warehouse} snapshot: {snapshot.applied_count} applied, {snapshot.stale_count} stale,"
        f" {snapshot.zeroed_count} dropped"
    )

    said.append("PHONE-1 incoming:")
    for line in client.list_incoming_supply(sku="PHONE-1"):
        counts = "counts" if line.counts else "date passed"
        said.append(
            f"  {line.location_id} {line.line_id}: {line.quantity} due {line.expected_date}"
            f" ({counts})"
        )
    said.append(f"{warehouse} expects:")
    for line in client.list_incoming_supply(location_id=warehouse):
        said.append(f"  {line.sku} {line.line_id}: {line.quantity} due {line.expected_date}")
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--warehouse", default="NL-WH-01")
    parser.add_argument("--store", default="NL-AMS-01")
    args = parser.parse_args()
    with Client(args.target, api_key=args.api_key) as client:
        for line in run(client, args.warehouse, args.store):
            print(line)


if __name__ == "__main__":
    main()
