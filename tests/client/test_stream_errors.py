"""A feed stream that fails on the caller's side says why, from both clients: a naive
datetime, a quantity past int64 or not a whole number, or the caller's own generator
raising. A snapshot then writes nothing; a delta stream keeps what was acknowledged."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import pytest
from conftest import NOW
from factories import minutes, store
from omnistock.client import (
    ApiError,
    AsyncClient,
    Client,
    Exposure,
    InvalidRecordError,
    NotFoundError,
)
from omnistock.server.testing import InProcessServer

STORE = "NL-AMS-01"
CLIENTS = ["sync", "async"]


@pytest.fixture
def feeding(client: Client) -> Client:
    client.upsert_locations([store(STORE)])
    client.import_snapshot(STORE, NOW - minutes(30), [("A", 5)])
    return client


def snapshot(kind: str, target: str, as_of: datetime, records: Iterable[Any]) -> None:
    """import_snapshot on the kind of client, in batches of one record."""
    if kind == "sync":
        with Client(target) as client:
            client.import_snapshot(STORE, as_of, records, batch_size=1)
        return

    async def main() -> None:
        async with AsyncClient(target) as client:
            await client.import_snapshot(STORE, as_of, records, batch_size=1)

    asyncio.run(main())


def deltas(kind: str, target: str, batches: Iterable[Any], seen: list[str]) -> None:
    """stream_deltas on the kind of client; each ack's batch id goes into ``seen``."""
    if kind == "sync":
        with Client(target) as client:
            for ack in client.stream_deltas(batches):
                seen.append(ack.batch_id)
        return

    async def main() -> None:
        async with AsyncClient(target) as client:
            async for ack in client.stream_deltas(batches):
                seen.append(ack.batch_id)

    asyncio.run(main())


def stock(client: Client, *skus: str) -> dict[str, int | None]:
    """on_hand per sku at the store; None for a sku that was never written."""
    found: dict[str, int | None] = {}
    for sku in skus:
        try:
            [answer] = client.get_availability(sku, [STORE], exposure=Exposure.EXACT)
            found[sku] = answer.on_hand
        except NotFoundError:
            found[sku] = None
    return found


# Snapshots


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_naive_as_of_is_a_value_error(
    kind: str, server: InProcessServer, feeding: Client
) -> None:
    with pytest.raises(ValueError, match="aware datetime") as caught:
        snapshot(kind, server.target, datetime(2026, 11, 23, 12), [("A", 1), ("B", 2)])
    assert not isinstance(caught.value, ApiError)
    assert stock(feeding, "A", "B") == {"A": 5, "B": None}


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(
    ("quantity", "cause"), [(2**63, ValueError), (math.nan, TypeError), (1.5, TypeError)]
)
def test_a_quantity_that_is_no_int64_names_its_record_and_writes_nothing(
    kind: str, server: InProcessServer, feeding: Client, quantity: object, cause: type
) -> None:
    records = [("A", 1), ("B", 2), ("C", quantity), ("D", 4)]
    with pytest.raises(InvalidRecordError) as caught:
        snapshot(kind, server.target, NOW, records)
    error = caught.value
    assert (error.batch, error.index, error.sku, error.field) == (None, 2, "C", "on_hand")
    assert str(error).startswith("records[2] (sku 'C'): on_hand: must be an int within int64")
    assert isinstance(error, ValueError) and isinstance(error.__cause__, cause)
    assert "nothing" in " ".join(error.__notes__)
    # A and B went out in batches of their own before C failed: the call was cancelled.
    assert stock(feeding, "A", "B") == {"A": 5, "B": None}


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_failing_record_generator_raises_its_own_exception_and_writes_nothing(
    kind: str, server: InProcessServer, feeding: Client
) -> None:
    failure = RuntimeError("the feed file went away")

    def records() -> Iterator[tuple[str, int]]:
        yield ("A", 1)
        yield ("B", 2)
        raise failure

    with pytest.raises(RuntimeError) as caught:
        snapshot(kind, server.target, NOW, records())
    assert caught.value is failure
    assert stock(feeding, "A", "B") == {"A": 5, "B": None}
    assert feeding.get_feed_status(STORE).snapshot_count == 1


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_record_that_is_not_a_pair_names_its_index(
    kind: str, server: InProcessServer, feeding: Client
) -> None:
    with pytest.raises(InvalidRecordError, match=r"records\[1\]: is a str"):
        snapshot(kind, server.target, NOW, [("A", 1), "B"])
    assert stock(feeding, "A") == {"A": 5}


# Delta streams


def record(sku: str, **fields: object) -> dict[str, object]:
    return {"location_id": STORE, "sku": sku, "source_updated_at": NOW - minutes(1), **fields}


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(
    ("bad", "field", "cause"),
    [
        ({"on_hand": 2**63}, "on_hand", ValueError),
        ({"adjustment": math.nan}, "adjustment", TypeError),
        ({"on_hand": 1, "source_updated_at": datetime(2026, 11, 23, 11)}, "source_updated_at", ValueError),
    ],
    ids=["2**63", "nan", "naive-datetime"],
)  # fmt: skip
def test_a_bad_delta_record_names_its_batch_and_index_after_the_earlier_acks(
    kind: str, server: InProcessServer, feeding: Client, bad: dict[str, object], field: str,
    cause: type,
) -> None:  # fmt: skip
    batches = [
        [record("A", on_hand=7)],
        [record("B", on_hand=8)],
        [record("C", on_hand=3), record("D", **bad)],
    ]
    seen: list[str] = []
    with pytest.raises(InvalidRecordError) as caught:
        deltas(kind, server.target, batches, seen)
    error = caught.value
    assert (error.batch, error.index, error.sku, error.field) == (2, 1, "D", field)
    assert str(error).startswith(f"batches[2].records[1] (sku 'D'): {field}: ")
    assert isinstance(error.__cause__, cause)
    # Batches 0 and 1 were acknowledged first and stay applied; nothing of 2 was sent.
    assert seen == ["0", "1"]
    assert stock(feeding, "A", "B", "C", "D") == {"A": 7, "B": 8, "C": None, "D": None}


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_failing_batch_generator_raises_its_own_exception_after_the_earlier_acks(
    kind: str, server: InProcessServer, feeding: Client
) -> None:
    failure = RuntimeError("the POS went away")

    def batches() -> Iterator[list[dict[str, object]]]:
        yield [record("A", on_hand=7)]
        yield [record("B", adjustment=-1)]
        raise failure

    seen: list[str] = []
    with pytest.raises(RuntimeError) as caught:
        deltas(kind, server.target, batches(), seen)
    assert caught.value is failure
    assert seen == ["0", "1"]
    assert any("the 2 batch(es) sent before it" in note for note in caught.value.__notes__)
    assert stock(feeding, "A", "B") == {"A": 7, "B": -1}


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_cancelled_snapshot_never_commits(
    kind: str, server: InProcessServer, feeding: Client
) -> None:
    # gRPC ends a server's request stream alike for a client that closed it and one that
    # cancelled the call: the server must tell them apart every time, not most times.
    def records(n: int) -> Iterator[tuple[str, int]]:
        yield ("A", n)
        yield ("B", n)
        raise RuntimeError("stop")

    for n in range(30):
        with pytest.raises(RuntimeError):
            snapshot(kind, server.target, NOW + minutes(n), records(n))
    assert stock(feeding, "A", "B") == {"A": 5, "B": None}
    assert feeding.get_feed_status(STORE).snapshot_count == 1
