"""A partner system: push a store's stock, then hold an item for a customer.

python client/examples/partner.py --target HOST:PORT [--api-key KEY] [--store NL-AMS-01]

Sends a snapshot of the store (all or nothing), a delta as a sale happens, then reserves
one unit for pickup with an idempotency key (a retry can never hold twice) and commits it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from omnistock.client import (
    Client,
    DeltaRecord,
    Exposure,
    FailedPreconditionError,
    ReservationMethod,
    ReservationState,
)


def run(client: Client, store: str) -> list[str]:
    said = []
    now = datetime.now(UTC)
    result = client.import_snapshot(
        store, now - timedelta(seconds=2), [("PHONE-1", 6), ("CASE-1", 10)]
    )
    said.append(f"snapshot: {result.applied_count} applied, {result.zeroed_count} zeroed")
    sold_at = Timestamp()
    sold_at.FromDatetime(now - timedelta(seconds=1))
    sale = DeltaRecord(location_id=store, sku="PHONE-1", adjustment=-1, source_updated_at=sold_at)
    for ack in client.stream_deltas([[sale]]):
        said.append(f"delta: {ack.applied_count} applied, {ack.rejected_count} rejected")
    key = f"order-{store}-{now:%Y%m%d%H%M%S%f}"
    try:
        hold = client.create_reservation(
            store, {"PHONE-1": 1}, method=ReservationMethod.PICKUP, idempotency_key=key,
            customer_reference="order 1001",
        )  # fmt: skip
    except FailedPreconditionError as error:
        return [*said, f"cannot hold: {error.precondition_violations}"]
    again = client.create_reservation(
        store, {"PHONE-1": 1}, method=ReservationMethod.PICKUP, idempotency_key=key,
        customer_reference="order 1001",
    )  # fmt: skip
    said.append(
        f"held {hold.reservation_id} (the retry got the same: {again.reservation_id == hold.reservation_id})"
    )
    committed = client.commit_reservation(hold.reservation_id)
    said.append(f"state: {ReservationState(committed.state).name}")
    [now_available] = client.get_availability("PHONE-1", [store], exposure=Exposure.EXACT)
    said.append(f"PHONE-1 available to sell now: {now_available.available_to_sell}")
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--store", default="NL-AMS-01")
    args = parser.parse_args()
    with Client(args.target, api_key=args.api_key) as client:
        for line in run(client, args.store):
            print(line)


if __name__ == "__main__":
    main()
