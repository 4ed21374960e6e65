"""Every error arrives: the worst case of each batch and stream RPC, through the SDK on a
channel with gRPC's default settings (8 KiB of received metadata at most), answers with its
status and details instead of RESOURCE_EXHAUSTED, says how many it left out, and its
trailers measure well under the limit."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import pytest
from conftest import NOW
from factories import minutes, store, ts, update
from omnistock.client import (
    ApiError,
    CartLine,
    Client,
    DeltaRecord,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SnapshotRecord,
    StockUpdate,
    origin,
)
from omnistock.server.domain.errors import FieldViolation, InvalidArgument, NotFound
from omnistock.server.domain.reservations import InsufficientStock, Shortfall
from omnistock.server.testing import InProcessServer
from omnistock.server.transport.errors import status_for

STORE = "NL-AMS-01"
DEFAULT_METADATA_LIMIT = 8 * 1024  # grpc.max_metadata_size when a channel does not set it
# What the server keeps to (transport/errors.py): under 6.5 KiB, leaving room for a proxy's.
TRAILER_BUDGET = 6_656
LONG = "x" * 10_000  # an id far past the 64 characters allowed


class TrailerRecorder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Keeps each call, to measure the trailers that reached the client."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def _keep(self, call: Any) -> Any:
        self.calls.append(call)
        return call

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._keep(continuation(details, request))

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._keep(continuation(details, request))

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._keep(continuation(details, requests))

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._keep(continuation(details, requests))

    def trailer_bytes(self) -> int:
        call = self.calls[-1]
        return trailer_bytes(call.details() or "", call.trailing_metadata() or ())


def trailer_bytes(message: str, trailing: Iterable[tuple[str, str | bytes]]) -> int:
    """Trailers as gRPC counts them: name + value as sent + 32 each; binary values go
    base64 (unpadded), grpc-message percent-encoded."""
    sent = "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode()
    )
    size = len("grpc-status") + 2 + 32 + len("grpc-message") + len(sent) + 32
    for key, value in trailing:
        raw = base64.b64encode(value).rstrip(b"=") if isinstance(value, bytes) else value.encode()
        size += len(key) + len(raw) + 32
    return size


@pytest.fixture
def recorder() -> TrailerRecorder:
    return TrailerRecorder()


@pytest.fixture
def plain(server: InProcessServer, recorder: TrailerRecorder) -> Iterator[Client]:
    """A client on a channel with no options at all: every gRPC default holds."""
    channel = grpc.intercept_channel(grpc.insecure_channel(server.target), recorder)
    with Client(server.target, channel=channel) as client:
        client.upsert_locations([store(STORE)])
        yield client
    channel.close()


def caught(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as raised:
        call()
    return raised.value


def check_arrived(error: ApiError, recorder: TrailerRecorder, *, shown: int, found: int) -> None:
    """All ``found`` problems are accounted for: ``shown`` listed, the rest counted."""
    assert shown > 0
    assert error.not_shown == found - shown > 0
    assert error.metadata["not_shown"] == str(found - shown)
    assert f"({found - shown:,} not shown in the details)" in error.message
    assert recorder.trailer_bytes() <= TRAILER_BUDGET < DEFAULT_METADATA_LIMIT


def test_a_snapshot_of_20000_bad_records_reports_them_all(
    plain: Client, recorder: TrailerRecorder
) -> None:
    plain.import_snapshot(STORE, NOW - minutes(30), [("A", 5)])
    records = [SnapshotRecord(sku=f"S{i}", on_hand=-2 * 10**12) for i in range(20_000)]
    error = caught(lambda: plain.import_snapshot(STORE, NOW, records))
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations[0].field == "records[0].on_hand"
    # Counted across the whole stream (four messages of 5,000), not just the first.
    assert error.message.startswith("records[0].on_hand: must be within")
    assert "(and 19,999 more)" in error.message
    check_arrived(error, recorder, shown=len(error.field_violations), found=20_000)
    [answer] = plain.get_availability("A", [STORE])
    assert answer.sku == "A"  # nothing was written: A keeps its record


def test_a_delta_batch_full_of_bad_records_with_long_ids_is_acknowledged(plain: Client) -> None:
    bad = DeltaRecord(location_id="L" * 300, sku="S" * 300, on_hand=1, source_updated_at=ts(NOW))
    [ack] = plain.stream_deltas([[bad] * 10_000])
    assert ack.rejected_count == len(ack.rejects) == 10_000
    assert all(len(r.description.encode()) <= 200 for r in ack.rejects)


def test_an_oversized_delta_batch_of_long_ids_is_refused_whole(
    plain: Client, recorder: TrailerRecorder
) -> None:
    bad = DeltaRecord(location_id="L" * 300, sku="S" * 300, on_hand=1, source_updated_at=ts(NOW))
    error = caught(lambda: list(plain.stream_deltas([[bad] * 10_001])))
    assert isinstance(error, InvalidArgumentError)
    assert [v.field for v in error.field_violations] == ["records"]
    assert error.not_shown == 0
    assert recorder.trailer_bytes() <= TRAILER_BUDGET


def test_batch_get_availability_with_1000_bad_pairs(
    plain: Client, recorder: TrailerRecorder
) -> None:
    pairs = [(f"{LONG[:65]}{i}", f"bad location {i}") for i in range(1_000)]
    error = caught(lambda: plain.batch_get_availability(pairs))
    assert isinstance(error, InvalidArgumentError)
    assert [v.field for v in error.field_violations[:2]] == ["items[0].sku", "items[0].location_id"]
    check_arrived(error, recorder, shown=len(error.field_violations), found=2_000)


def test_batch_get_availability_with_1000_unknown_skus(
    plain: Client, recorder: TrailerRecorder
) -> None:
    pairs = [(f"SKU-{i:060d}", STORE) for i in range(1_000)]
    error = caught(lambda: plain.batch_get_availability(pairs))
    assert isinstance(error, NotFoundError)
    assert error.resource_names[0] == pairs[0][0]
    check_arrived(error, recorder, shown=len(error.resource_names), found=1_000)


def test_get_availability_with_1000_bad_location_ids(
    plain: Client, recorder: TrailerRecorder
) -> None:
    error = caught(lambda: plain.get_availability("A", [f"bad id {i}" for i in range(1_000)]))
    assert isinstance(error, InvalidArgumentError)
    check_arrived(error, recorder, shown=len(error.field_violations), found=1_000)


def test_apply_stock_updates_with_10000_bad_updates(
    plain: Client, recorder: TrailerRecorder
) -> None:
    updates = [
        StockUpdate(location_id=STORE, sku=f"bad sku {i}", on_hand=-2 * 10**12, source_updated_at=ts(NOW))
        for i in range(10_000)
    ]  # fmt: skip
    error = caught(lambda: plain.apply_stock_updates(updates))
    assert isinstance(error, InvalidArgumentError)
    assert [v.field for v in error.field_violations[:2]] == ["updates[0].sku", "updates[0].on_hand"]
    check_arrived(error, recorder, shown=len(error.field_violations), found=20_000)


def test_apply_stock_updates_to_10000_unknown_locations(
    plain: Client, recorder: TrailerRecorder
) -> None:
    updates = [update(f"LOC-{i:059d}", "A", 1, NOW) for i in range(10_000)]
    error = caught(lambda: plain.apply_stock_updates(updates))
    assert isinstance(error, NotFoundError)
    check_arrived(error, recorder, shown=len(error.resource_names), found=10_000)


def test_upsert_locations_with_1000_bad_locations(plain: Client, recorder: TrailerRecorder) -> None:
    locations = [store(f"bad id {i}") for i in range(1_000)]
    error = caught(lambda: plain.upsert_locations(locations))
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations[0].field == "locations[0].id"
    check_arrived(error, recorder, shown=len(error.field_violations), found=1_000)


def test_upsert_locations_repeating_a_10000_character_id(
    plain: Client, recorder: TrailerRecorder
) -> None:
    error = caught(lambda: plain.upsert_locations([store(LONG)] * 500))  # 10 MB
    assert isinstance(error, InvalidArgumentError)
    first = error.field_violations[0]
    assert first.field == "locations[1]"
    assert first.description.startswith("repeats 'xxx") and first.description.endswith("...")
    assert all(len(v.description.encode()) <= 200 for v in error.field_violations)
    check_arrived(error, recorder, shown=len(error.field_violations), found=499)


def test_create_reservation_with_100_bad_lines(plain: Client, recorder: TrailerRecorder) -> None:
    lines = {f"{LONG}{i}": 0 for i in range(100)}
    error = caught(lambda: plain.create_reservation(STORE, lines))
    assert isinstance(error, InvalidArgumentError)
    assert [v.field for v in error.field_violations[:2]] == ["lines[0].sku", "lines[0].quantity"]
    check_arrived(error, recorder, shown=len(error.field_violations), found=200)


def test_create_reservation_with_100_short_lines(plain: Client, recorder: TrailerRecorder) -> None:
    skus = [f"SKU-{i:060d}" for i in range(100)]
    plain.apply_stock_updates([update(STORE, sku, 0, NOW - minutes(1)) for sku in skus])
    error = caught(lambda: plain.create_reservation(STORE, dict.fromkeys(skus, 1)))
    assert isinstance(error, FailedPreconditionError)
    assert error.precondition_violations[0].subject == skus[0]
    assert error.precondition_violations[0].description == "requested 1, available 0"
    check_arrived(error, recorder, shown=len(error.precondition_violations), found=100)


@pytest.mark.parametrize("method", ["search_nearby", "get_fulfillment_options"])
def test_a_cart_repeating_a_10000_character_sku(
    plain: Client, recorder: TrailerRecorder, method: str
) -> None:
    lines = [CartLine(sku=LONG, quantity=1)] * 50
    where = origin(latitude=52.37, longitude=4.89)
    error = caught(lambda: getattr(plain, method)(lines, where))
    assert isinstance(error, InvalidArgumentError)
    assert all(len(v.description.encode()) <= 200 for v in error.field_violations)
    # Each line's sku is malformed, and each after the first repeats it.
    check_arrived(error, recorder, shown=len(error.field_violations), found=99)


def test_a_watch_of_1000_bad_pairs(plain: Client, recorder: TrailerRecorder) -> None:
    pairs = [(f"bad sku {i}", f"bad location {i}") for i in range(1_000)]

    def watch() -> None:
        with plain.watch_availability(pairs, reconnect=False) as events:
            next(iter(events))

    error = caught(watch)
    assert isinstance(error, InvalidArgumentError)
    check_arrived(error, recorder, shown=len(error.field_violations), found=2_000)


def test_a_small_error_lists_everything_and_counts_nothing(
    plain: Client, recorder: TrailerRecorder
) -> None:
    error = caught(lambda: plain.batch_get_availability([("bad sku", STORE)]))
    assert [v.field for v in error.field_violations] == ["items[0].sku"]
    assert error.not_shown == 0
    assert "not_shown" not in error.metadata
    assert "not shown" not in error.message


def test_a_long_message_is_clipped(plain: Client, recorder: TrailerRecorder) -> None:
    skus = [f"SKU-{i:060d}" for i in range(100)]
    plain.apply_stock_updates([update(STORE, sku, 0, NOW - minutes(1)) for sku in skus])
    error = caught(lambda: plain.create_reservation(STORE, dict.fromkeys(skus, 1)))
    # The message names every short line (about 9 KB): it is cut to 256 bytes, then counted.
    assert error.message.startswith(f"not enough stock at {STORE}: {skus[0]} (requested 1")
    clipped, count = error.message.rsplit(" (", 1)
    assert clipped.endswith("...") and len(clipped.encode()) <= 256
    assert count == f"{error.not_shown:,} not shown in the details)"


WIDE = "\u00e9\u4e2d\U0001f600"  # 2, 3 and 4 bytes of UTF-8: percent-encoded, 3 x each byte


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgument(
            [FieldViolation(WIDE * 3_000, WIDE * 3_000)] * 10_000,
            message=WIDE * 3_000,
            omitted=10**12,
        ),
        NotFound("sku", [f"{WIDE * 3_000}{i}" for i in range(10_000)], reason="SKU_NOT_FOUND"),
        InsufficientStock(WIDE * 3_000, [Shortfall(WIDE * 3_000, 10**12, 10**12)] * 100),
    ],
    ids=["field-violations", "resource-names", "precondition-violations"],
)
def test_the_largest_possible_details_stay_within_the_budget(error: Exception) -> None:
    status = status_for(error)  # type: ignore[arg-type]
    [(_, details)] = status.trailing_metadata
    assert len(details) <= 4_096  # the serialized google.rpc.Status
    assert len(status.details.encode()) <= 256 + len(
        " (10,000,000,009,999 not shown in the details)"
    )
    assert trailer_bytes(status.details, status.trailing_metadata) <= TRAILER_BUDGET
