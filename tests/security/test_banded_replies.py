"""A banded reply is a function of the band and the record's age alone (and of whether ATS
covers a quantity asked, up to the cap): checked byte for byte on every read path.

Two servers, A and B, each on its own database of one kind (SQLite, then PostgreSQL), share
one clock and the same locations. Each example writes to both the same (sku, location)
records with the same source times, where A's and B's counts differ but sit in the same
band: both 0 (on_hand may still differ), both LIMITED, both IN_STOCK, or both stale (any
count). Where the example asks for q units of a sku, A's and B's counts are on the same side
of q: whether q units are there is what a shopper asks, and the answer says so (docs/security.md,
"What a banded key can still learn"). A key without the exact grant then asks A and B the
same questions, and every reply must be the same bytes (SerializeToString(deterministic=True);
an error's google.rpc.Status, message and details):

- GetAvailability (every location, and two named ones), BatchGetAvailability of every pair;
- SearchNearby (pickup, pickup with every line, ship to store) and GetFulfillmentOptions;
- WatchAvailability's SNAPSHOT, then, after a second write moving records to new bands
  (again the same bands in A and B, different counts), its CHANGE events; the reads again;
- CreateReservation of the cart at every location: the refusal, or the reservation.

One field is cleared: a new reservation's id, a ULID of the wall clock's milliseconds and 80
random bits, which differs between any two holds whatever the stock. Nothing else is: times
come from the servers' shared clock (the watch's send_time included).

The servers are made once per database kind; each example uses skus of its own (the same
names in A and B), so nothing an earlier example wrote or held can reach its answers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import NOW, POSTGRES_URL, FixedClock
from factories import store, ts, warehouse
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnistock.client import Capabilities, Client, Exposure, LatLng
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import (
    DEFAULT_BANDED_MAX_QUANTITY,
    DEFAULT_LOW_THRESHOLD,
    DEFAULT_STORE_FRESHNESS,
)
from omnistock.server.domain.stock import (
    Exposure as DomainExposure,
)
from omnistock.server.store.database import normalize_url
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer
from omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    common_pb2,
    feed_pb2,
    reservation_pb2,
    reservation_pb2_grpc,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

CAP = DEFAULT_BANDED_MAX_QUANTITY
THRESHOLD = DEFAULT_LOW_THRESHOLD
BUDGET_MINUTES = int(DEFAULT_STORE_FRESHNESS.total_seconds() // 60)
STORES = ("NL-AMS-01", "NL-AMS-02", "NL-AMS-03")
WAREHOUSE = "NL-WH-01"
LOCATIONS = (*STORES, WAREHOUSE)
ORIGIN = availability_pb2.Origin(position=common_pb2.LatLng(latitude=52.3731, longitude=4.8926))
# The suite runs the same examples every time (a CI run must not fail by chance);
# OMNISTOCK_EXPOSURE_RANDOM=1 explores new ones, and OMNISTOCK_EXPOSURE_EXAMPLES=N more of them.
RANDOM = bool(os.environ.get("OMNISTOCK_EXPOSURE_RANDOM"))
EXAMPLES = int(os.environ.get("OMNISTOCK_EXPOSURE_EXAMPLES", "30"))


# -- what an example writes


@dataclass(frozen=True)
class Cell:
    """One (location, sku) record in A and in B: None where it was never reported."""

    age_minutes: int
    on_hand_a: int
    on_hand_b: int

    @property
    def stale(self) -> bool:
        return self.age_minutes > BUDGET_MINUTES

    def band(self) -> str:
        if self.stale:
            return "UNKNOWN"
        ats = max(0, self.on_hand_a)
        return "OUT" if ats == 0 else "LIMITED" if ats < THRESHOLD else "IN"


def _same_side(lo: int, hi: int, first: int, quantity: int) -> tuple[int, int]:
    """The counts in [lo, hi] on the same side of ``quantity`` as ``first``."""
    if first >= quantity:
        return max(lo, quantity), hi
    return lo, min(hi, quantity - 1)


@st.composite
def cells(draw: st.DrawFn, quantity: int, *, younger_than: int | None = None) -> Cell:
    """A record's age and its counts in A and B: the same band, and the same side of
    ``quantity``. ``younger_than``: a second write, newer than the first (in minutes)."""
    oldest = BUDGET_MINUTES + 120 if younger_than is None else younger_than - 1
    youngest = 1 if younger_than is None else 0
    bands = ["OUT", "LIMITED", "IN"] + (["STALE"] if oldest > BUDGET_MINUTES else [])
    band = draw(st.sampled_from(bands))
    if band == "STALE":  # UNKNOWN and never fulfillable, whatever the counts
        age = draw(st.integers(BUDGET_MINUTES + 1, oldest))
        return Cell(age, draw(st.integers(-3, 60)), draw(st.integers(-3, 60)))
    age = draw(st.integers(youngest, min(oldest, BUDGET_MINUTES)))
    if band == "OUT":  # ATS 0 in both; on_hand may differ (POS systems go negative)
        return Cell(age, draw(st.integers(-3, 0)), draw(st.integers(-3, 0)))
    lo, hi = (1, THRESHOLD - 1) if band == "LIMITED" else (THRESHOLD, 60)
    first = draw(st.integers(lo, hi))
    return Cell(age, first, draw(st.integers(*_same_side(lo, hi, first, quantity))))


@dataclass(frozen=True)
class Example:
    quantities: dict[str, int]  # by sku slot: "P", "Q"
    before: dict[tuple[str, str], Cell]  # (slot, location) -> cell; absent: never reported
    after: dict[tuple[str, str], Cell]


@st.composite
def examples(draw: st.DrawFn) -> Example:
    quantities = {slot: draw(st.integers(1, CAP)) for slot in ("P", "Q")}
    if draw(st.integers(0, 7)) == 0:  # past the cap: every path with quantities refuses it
        quantities["Q"] = CAP + 1
    before: dict[tuple[str, str], Cell] = {}
    after: dict[tuple[str, str], Cell] = {}
    for slot, location in itertools.product(quantities, LOCATIONS):
        q = quantities[slot]
        if draw(st.integers(0, 5)) > 0:
            before[(slot, location)] = draw(cells(q))
        # The second write is newer than the first (so it applies).
        first = before.get((slot, location))
        younger = None if first is None else first.age_minutes
        after[(slot, location)] = draw(cells(q, younger_than=younger))
    return Example(quantities, before, after)


# -- the twin servers


@dataclass
class Side:
    server: InProcessServer
    channel: grpc.Channel
    banded: tuple[tuple[str, str], ...]
    admin: Client
    availability: availability_pb2_grpc.AvailabilityServiceStub = field(init=False)
    reservations: reservation_pb2_grpc.ReservationServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.availability = availability_pb2_grpc.AvailabilityServiceStub(self.channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(self.channel)

    def ask(self, method: Callable[..., Any], request: Any) -> tuple[str, bytes]:
        """The reply's bytes, or the error's status (code, message and details)."""
        try:
            reply = method(request, metadata=self.banded, timeout=30)
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            assert status is not None, error
            return "error", status.SerializeToString(deterministic=True)
        if isinstance(reply, reservation_pb2.CreateReservationResponse):
            reply.reservation.reservation_id = ""  # a ULID: wall clock and randomness
        return "ok", reply.SerializeToString(deterministic=True)


@dataclass
class Twins:
    a: Side
    b: Side
    clock: FixedClock
    examples: Iterator[int] = field(default_factory=itertools.count)


def _side(database_url: str, clock: FixedClock) -> Side:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    server = InProcessServer(config, clock=clock).start()
    assert server.server is not None
    keys = KeyRepository(server.server.engine)

    def key(name: str, roles: tuple[Role, ...], exposure: DomainExposure) -> str:
        _, made = keys.create(
            name, roles, locations=None, exposure=exposure, rate_per_second=1e6, burst=10**6,
            now=NOW,
        )  # fmt: skip
        return made

    admin = Client(server.target, api_key=key("ops", (Role.ADMIN,), DomainExposure.EXACT))
    admin.upsert_locations(
        [
            store(STORES[0], position=LatLng(latitude=52.3790, longitude=4.9003)),
            store(STORES[1], position=LatLng(latitude=52.3389, longitude=4.8722)),
            store(
                STORES[2],
                position=LatLng(latitude=52.4006, longitude=4.9319),
                capabilities=Capabilities(pickup=True, ship_from=True, ship_to_store=True),
                shipping_days=2,
            ),
            warehouse(WAREHOUSE, position=LatLng(latitude=52.30, longitude=4.75)),
        ]
    )
    banded = key("shop app", (Role.READ, Role.RESERVE), DomainExposure.BANDED)
    channel = grpc.insecure_channel(server.target)
    return Side(server, channel, (("authorization", f"Bearer {banded}"),), admin)


def _close(side: Side) -> None:
    side.admin.close()
    side.channel.close()
    side.server.stop()


def _postgres_databases(names: list[str]) -> list[str]:
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    base = make_url(normalize_url(POSTGRES_URL))
    return [base.set(database=name).render_as_string(hide_password=False) for name in names]


def _drop_postgres_databases(names: list[str]) -> None:
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def twins(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Twins]:
    """Servers A and B, each on a database of its own of one kind, made once for the module."""
    names: list[str] = []
    if request.param == "sqlite":
        folder: Path = tmp_path_factory.mktemp("twins")
        urls = [f"sqlite:///{folder / 'a.db'}", f"sqlite:///{folder / 'b.db'}"]
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL not configured: set OMNISTOCK_TEST_POSTGRES_URL")
        names = [f"omnistock_twins_{os.getpid()}_{suffix}" for suffix in ("a", "b")]
        urls = _postgres_databases(names)
    clock = FixedClock()
    a = _side(urls[0], clock)
    try:
        b = _side(urls[1], clock)
    except BaseException:
        _close(a)
        raise
    try:
        yield Twins(a, b, clock)
    finally:
        _close(a)
        _close(b)
        if names:
            _drop_postgres_databases(names)


# -- the questions


def _updates(
    skus: dict[str, str], side: str, cells: dict[tuple[str, str], Cell]
) -> list[feed_pb2.StockUpdate]:
    """Side ``side``'s records of ``cells``, stamped with each cell's age."""
    updates = []
    for (slot, location), cell in cells.items():
        on_hand = cell.on_hand_a if side == "a" else cell.on_hand_b
        at = NOW - timedelta(minutes=cell.age_minutes)
        updates.append(
            feed_pb2.StockUpdate(
                location_id=location, sku=skus[slot], on_hand=on_hand, source_updated_at=ts(at)
            )
        )
    return updates


def _reads(
    side: Side, skus: dict[str, str], quantities: dict[str, int]
) -> list[tuple[str, str, bytes]]:
    """Every read path's answer, labelled."""
    stub = side.availability
    lines = [availability_pb2.CartLine(sku=skus[s], quantity=q) for s, q in quantities.items()]
    questions: list[tuple[str, Callable[..., Any], Any]] = []
    for slot, sku in skus.items():
        questions.append((f"GetAvailability {slot} everywhere", stub.GetAvailability,
                          availability_pb2.GetAvailabilityRequest(sku=sku)))  # fmt: skip
        questions.append((f"GetAvailability {slot} at two", stub.GetAvailability,
                          availability_pb2.GetAvailabilityRequest(
                              sku=sku, location_ids=[STORES[1], WAREHOUSE])))  # fmt: skip
    questions.append(("BatchGetAvailability", stub.BatchGetAvailability,
                      availability_pb2.BatchGetAvailabilityRequest(items=[
                          availability_pb2.SkuLocation(sku=sku, location_id=location)
                          for sku in skus.values() for location in LOCATIONS])))  # fmt: skip
    for method, require_all in (
        (availability_pb2.FULFILLMENT_METHOD_PICKUP, False),
        (availability_pb2.FULFILLMENT_METHOD_PICKUP, True),
        (availability_pb2.FULFILLMENT_METHOD_SHIP_TO_STORE, False),
    ):
        questions.append((f"SearchNearby {method} all={require_all}", stub.SearchNearby,
                          availability_pb2.SearchNearbyRequest(
                              lines=lines, origin=ORIGIN, method=method, require_all=require_all,
                              exposure=common_pb2.EXPOSURE_BANDED)))  # fmt: skip
    for slot, sku in skus.items():
        one = [availability_pb2.CartLine(sku=sku, quantity=quantities[slot])]
        questions.append((f"SearchNearby {slot} alone", stub.SearchNearby,
                          availability_pb2.SearchNearbyRequest(lines=one, origin=ORIGIN)))  # fmt: skip
        questions.append((f"GetFulfillmentOptions {slot} alone", stub.GetFulfillmentOptions,
                          availability_pb2.GetFulfillmentOptionsRequest(lines=one, origin=ORIGIN)))  # fmt: skip
    questions.append(("GetFulfillmentOptions", stub.GetFulfillmentOptions,
                      availability_pb2.GetFulfillmentOptionsRequest(lines=lines, origin=ORIGIN)))  # fmt: skip
    return [(label, *side.ask(method, request)) for label, method, request in questions]


def _watch_request(skus: dict[str, str]) -> availability_pb2.WatchAvailabilityRequest:
    return availability_pb2.WatchAvailabilityRequest(
        pairs=[
            availability_pb2.SkuLocation(sku=sku, location_id=location)
            for sku in skus.values()
            for location in LOCATIONS
        ],
        heartbeat_seconds=300,
    )


def _band_after(example: Example, key: tuple[str, str]) -> str:
    cell = example.after.get(key, example.before.get(key))
    return "OUT" if cell is None else cell.band()


def _band_before(example: Example, key: tuple[str, str]) -> str:
    cell = example.before.get(key)
    return "OUT" if cell is None else cell.band()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(example=examples())
def test_banded_replies_are_the_same_bytes_for_counts_in_the_same_band(
    twins: Twins, example: Example
) -> None:
    n = next(twins.examples)
    skus = {"P": f"P{n:04d}", "Q": f"Q{n:04d}"}
    sides = {"a": twins.a, "b": twins.b}
    said: dict[str, list[tuple[str, str, bytes]]] = {"a": [], "b": []}

    for name, side in sides.items():
        updates = _updates(skus, name, example.before)
        if updates:
            side.admin.apply_stock_updates(updates)
        said[name] += _reads(side, skus, example.quantities)

    # Watches: the SNAPSHOT, then the CHANGE events of a second write.
    streams = {
        name: side.availability.WatchAvailability(
            _watch_request(skus), metadata=side.banded, timeout=60
        )
        for name, side in sides.items()
    }
    try:
        for name, stream in streams.items():
            said[name].append(
                ("watch SNAPSHOT", "ok", next(stream).SerializeToString(deterministic=True))
            )
        for name, side in sides.items():
            side.admin.apply_stock_updates(_updates(skus, name, example.after))
        moved = {
            (skus[slot], location)
            for slot, location in itertools.product(skus, LOCATIONS)
            if _band_before(example, (slot, location)) != _band_after(example, (slot, location))
        }
        for name, stream in streams.items():
            seen: set[tuple[str, str]] = set()
            while seen != moved:  # a CHANGE per band that moved, nothing for the rest
                message = next(stream)
                seen |= {(a.sku, a.location_id) for a in message.availabilities}
                assert seen <= moved, (name, seen - moved)
                said[name].append(
                    ("watch CHANGE", "ok", message.SerializeToString(deterministic=True))
                )
    finally:
        for stream in streams.values():
            stream.cancel()

    for name, side in sides.items():
        said[name] += [
            (f"after: {label}", *rest) for label, *rest in _reads(side, skus, example.quantities)
        ]
        for location in LOCATIONS:
            request = reservation_pb2.CreateReservationRequest(
                location_id=location,
                lines=[
                    reservation_pb2.ReservationLine(sku=skus[slot], quantity=q)
                    for slot, q in example.quantities.items()
                ],
                method=reservation_pb2.RESERVATION_METHOD_PICKUP,
                idempotency_key=f"{skus['P']}-{location}",
            )
            said[name].append(
                (
                    f"CreateReservation at {location}",
                    *side.ask(side.reservations.CreateReservation, request),
                )
            )

    assert [label for label, *_ in said["a"]] == [label for label, *_ in said["b"]]
    for (label, kind_a, bytes_a), (_, kind_b, bytes_b) in zip(said["a"], said["b"], strict=True):
        assert (kind_a, bytes_a) == (kind_b, bytes_b), label


def test_the_twins_do_differ_to_an_exact_key(twins: Twins) -> None:
    """The property above is not empty: the same writes read differently to EXACT."""
    n = next(twins.examples)
    sku = f"X{n:04d}"
    answers = []
    for side, count in ((twins.a, 4), (twins.b, 9)):
        side.admin.apply_stock_updates(
            [
                feed_pb2.StockUpdate(
                    location_id=STORES[0], sku=sku, on_hand=count, source_updated_at=ts(NOW)
                )
            ]
        )
        [exact] = side.admin.get_availability(sku, [STORES[0]], exposure=Exposure.EXACT)
        banded = side.ask(
            side.availability.GetAvailability,
            availability_pb2.GetAvailabilityRequest(sku=sku, location_ids=[STORES[0]]),
        )
        answers.append((exact.SerializeToString(deterministic=True), banded))
    assert answers[0][0] != answers[1][0]
    assert answers[0][1] == answers[1][1]
