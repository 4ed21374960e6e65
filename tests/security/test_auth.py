"""API keys, roles, scopes, exposure, rate limits and the audit log, through the SDK on a
server that checks keys (the default), on both databases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from factories import store, update
from grpc_health.v1 import health_pb2, health_pb2_grpc
from omnistock.client import (
    Client,
    Exposure,
    LatLng,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    Retry,
    UnauthenticatedError,
    cart,
    origin,
)
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

AMS, UTR = "NL-AMS-01", "NL-UTR-01"
NOW = datetime.now(UTC)


@dataclass
class Secure:
    server: InProcessServer
    keys: KeyRepository

    def key(
        self,
        name: str,
        *roles: Role,
        locations: list[str] | None = None,
        exposure: Exposure = Exposure.BANDED,
        rate: float = 1000.0,
        burst: int = 1000,
    ) -> str:
        from omnistock.server.domain.stock import Exposure as DomainExposure

        _, text = self.keys.create(
            name, roles, locations=locations, exposure=DomainExposure(int(exposure)),
            rate_per_second=rate, burst=burst, now=NOW,
        )  # fmt: skip
        return text

    def client(self, key: str | None) -> Client:
        return Client(self.server.target, api_key=key)


@pytest.fixture
def secure(database_url: str) -> Iterator[Secure]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)
        secure = Secure(server, keys)
        with secure.client(secure.key("ops", Role.ADMIN, exposure=Exposure.EXACT)) as admin:
            admin.upsert_locations([store(AMS), store(UTR)])
            admin.apply_stock_updates(
                [update(AMS, "PHONE", 5, NOW - timedelta(minutes=5)),
                 update(UTR, "PHONE", 7, NOW - timedelta(minutes=5))]
            )  # fmt: skip
        yield secure


def test_calls_without_a_valid_key_are_unauthenticated(secure: Secure) -> None:
    for key, reason in [
        (None, "API_KEY_MISSING"),
        ("not-a-key", "API_KEY_INVALID"),
        ("osk_000000000000_wrongsecret", "API_KEY_INVALID"),
    ]:
        with secure.client(key) as client, pytest.raises(UnauthenticatedError) as caught:
            client.get_availability("PHONE", [AMS])
        assert caught.value.reason == reason
    # A real key id with a wrong secret says the same as an unknown one.
    real = secure.key("kiosk", Role.READ)
    forged = real.rsplit("_", 1)[0] + "_forged"
    with secure.client(forged) as client, pytest.raises(UnauthenticatedError) as caught:
        client.get_availability("PHONE", [AMS])
    assert caught.value.reason == "API_KEY_INVALID"


def test_a_revoked_key_is_refused(secure: Secure) -> None:
    key = secure.key("old-partner", Role.READ)
    key_id = key.split("_")[1]
    assert secure.keys.revoke(key_id, now=NOW)
    with secure.client(key) as client, pytest.raises(UnauthenticatedError):
        client.get_availability("PHONE", [AMS])


def test_health_and_reflection_stay_open(secure: Secure) -> None:
    with grpc.insecure_channel(secure.server.target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_each_method_needs_its_role(secure: Secure) -> None:
    with secure.client(secure.key("kiosk", Role.READ)) as reader:
        assert reader.get_availability("PHONE", [AMS])[0].location_id == AMS
        with pytest.raises(PermissionDeniedError) as caught:
            reader.apply_stock_updates([update(AMS, "PHONE", 1, NOW)])
        assert caught.value.reason == "ROLE_MISSING"
        with pytest.raises(PermissionDeniedError):
            reader.create_reservation(AMS, {"PHONE": 1})
    with (
        secure.client(secure.key("pos", Role.FEED)) as feeder,
        pytest.raises(PermissionDeniedError),
    ):
        feeder.upsert_locations([store("NL-NEW-01")])


def test_a_feeder_writes_only_its_own_locations(secure: Secure) -> None:
    with secure.client(secure.key("pos-ams", Role.FEED, locations=[AMS])) as feeder:
        assert feeder.apply_stock_updates([update(AMS, "PHONE", 4, NOW)]).applied_count == 1
        for location in (UTR, "NL-NOPE-01"):  # existing or not: the same answer
            with pytest.raises(PermissionDeniedError) as caught:
                feeder.apply_stock_updates([update(location, "PHONE", 1, NOW)])
            assert caught.value.reason == "LOCATION_NOT_IN_SCOPE"
        with pytest.raises(PermissionDeniedError):
            feeder.import_snapshot(UTR, NOW, [("PHONE", 0)])
    with secure.client(secure.key("ops2", Role.READ, exposure=Exposure.EXACT)) as reader:
        assert reader.get_availability("PHONE", [UTR], exposure=Exposure.EXACT)[0].on_hand == 7


def test_partners_are_banded_and_see_only_their_locations(secure: Secure) -> None:
    with secure.client(secure.key("partner", Role.READ, locations=[AMS])) as partner:
        [answer] = partner.get_availability("PHONE", [AMS])
        assert answer.quantity_hint == "3+" and not answer.HasField("available_to_sell")
        with pytest.raises(PermissionDeniedError) as caught:
            partner.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)
        assert caught.value.reason == "EXPOSURE_NOT_GRANTED"
        for location in (UTR, "NL-NOPE-01"):
            with pytest.raises(PermissionDeniedError):
                partner.get_availability("PHONE", [location])
            with pytest.raises(PermissionDeniedError):
                partner.get_location(location)
        # "Every location" is every location the partner may see.
        assert [a.location_id for a in partner.get_availability("PHONE")] == [AMS]
        assert [loc.id for loc in partner.list_locations()] == [AMS]


def test_another_locations_reservation_reads_as_not_found(secure: Secure) -> None:
    with secure.client(secure.key("shop-utr", Role.RESERVE, locations=[UTR])) as utrecht:
        theirs = utrecht.create_reservation(UTR, {"PHONE": 1})
    with secure.client(secure.key("shop-ams", Role.RESERVE, locations=[AMS])) as amsterdam:
        with pytest.raises(NotFoundError) as caught:
            amsterdam.get_reservation(theirs.reservation_id)
        assert caught.value.reason == "RESERVATION_NOT_FOUND"
        with pytest.raises(NotFoundError):
            amsterdam.release_reservation(theirs.reservation_id)
        assert list(amsterdam.list_reservations()) == []


def test_rate_limits_answer_resource_exhausted_with_a_retry_delay(secure: Secure) -> None:
    key = secure.key("busy-app", Role.READ, rate=1.0, burst=2)
    # Without the SDK's retries, which would wait the delay out (tested below).
    with Client(secure.server.target, api_key=key, retry=Retry(attempts=1)) as client:
        client.get_availability("PHONE", [AMS])
        client.get_availability("PHONE", [AMS])
        with pytest.raises(ResourceExhaustedError) as caught:
            client.get_availability("PHONE", [AMS])
    assert caught.value.reason == "RATE_LIMITED"
    assert caught.value.retry_after is not None
    assert timedelta(0) < caught.value.retry_after <= timedelta(seconds=1)


def test_writes_are_audited_with_who_and_what(secure: Secure) -> None:
    feeder = secure.key("pos-ams", Role.FEED, Role.RESERVE, Role.READ, locations=[AMS])
    with secure.client(feeder) as client:
        client.apply_stock_updates([update(AMS, "PHONE", 9, NOW)])
        hold = client.create_reservation(AMS, {"PHONE": 2})
        client.get_availability("PHONE", [AMS])  # a read: not audited
    app = secure.server.server
    assert app is not None
    app.audit.flush()
    entries = [e for e in app.audit.recent(10) if e.principal == "pos-ams"]
    assert [(e.method.rsplit("/", 1)[1], e.detail) for e in entries] == [
        ("ApplyStockUpdates", {"locations": [AMS], "applied": 1, "stale": 0}),
        ("CreateReservation", {"reservation_id": hold.reservation_id, "location_id": AMS}),
    ]


def test_the_sdk_retries_reads_after_the_servers_retry_delay_but_not_writes(secure: Secure) -> None:
    key = secure.key("bursty", Role.READ, Role.FEED, rate=2.0, burst=1)
    with Client(secure.server.target, api_key=key, retry=Retry(attempts=3)) as client:
        client.get_availability("PHONE", [AMS])
        started = time.monotonic()
        # Over the limit: the read waits for the RetryInfo delay (about 0.5 s) and succeeds.
        assert client.get_availability("PHONE", [AMS])[0].location_id == AMS
        assert time.monotonic() - started >= 0.3
        # A write without an idempotency key is never repeated: the error comes straight back.
        with pytest.raises(ResourceExhaustedError):
            client.apply_stock_updates([update(AMS, "PHONE", 3, NOW)])
            client.apply_stock_updates([update(AMS, "PHONE", 3, NOW)])
    other = secure.key("bursty too", Role.READ, rate=2.0, burst=1)
    with Client(secure.server.target, api_key=other, retry=Retry(attempts=1)) as no_retry:
        no_retry.get_availability("PHONE", [AMS])
        with pytest.raises(ResourceExhaustedError):
            no_retry.get_availability("PHONE", [AMS])


def test_an_export_of_exact_counts_needs_the_exact_grant(secure: Secure) -> None:
    with secure.client(secure.key("feed-banded", Role.FEED)) as banded:
        with pytest.raises(PermissionDeniedError) as caught:
            list(banded.export_stock(AMS))
        assert caught.value.reason == "EXPOSURE_NOT_GRANTED"
    with secure.client(secure.key("feed-exact", Role.FEED, exposure=Exposure.EXACT)) as exact:
        assert [(a.sku, a.on_hand) for a in exact.export_stock(AMS)] == [("PHONE", 5)]


def test_the_import_command_sends_its_api_key(secure: Secure, tmp_path: Path) -> None:
    from omnistock.server.cli import main

    feed = tmp_path / "stock.csv"
    feed.write_text("location_id,sku,on_hand\nNL-AMS-01,PHONE,8\n")
    args = [
        "import",
        str(feed),
        "--format",
        "csv",
        "--mode",
        "snapshot",
        "--target",
        secure.server.target,
    ]
    args += ["--as-of", NOW.isoformat()]
    assert main([*args, "--api-key", "osk_000000000000_wrong"]) != 0
    assert main([*args, "--api-key", secure.key("pos-ams", Role.FEED, locations=[AMS])]) == 0
    with secure.client(secure.key("check", Role.READ, exposure=Exposure.EXACT)) as client:
        assert client.get_availability("PHONE", [AMS], exposure=Exposure.EXACT)[0].on_hand == 8


def test_a_partner_gets_the_nearest_stores_and_options_it_may_see(secure: Secure) -> None:
    """The limit counts the stores the key may see: a store nearer to the shopper but
    outside the scope does not take a place."""
    with secure.client(secure.key("ops3", Role.ADMIN)) as admin:
        admin.upsert_locations([store(UTR, position=LatLng(latitude=52.0901, longitude=5.1115))])
    dam = origin(latitude=52.3731, longitude=4.8926)
    with secure.client(secure.key("partner-utr", Role.READ, locations=[UTR])) as partner:
        found = partner.search_nearby(cart({"PHONE": 1}), dam, radius_km=100, limit=1)
        assert [loc.location_id for loc in found.locations] == [UTR]
        options = partner.get_fulfillment_options(cart({"PHONE": 1}), dam, radius_km=100)
        assert [o.pickup_location_id for o in options.options if o.pickup_location_id] == [UTR]
    with secure.client(secure.key("reader", Role.READ)) as reader:
        found = reader.search_nearby(cart({"PHONE": 1}), dam, radius_km=100, limit=1)
        assert [loc.location_id for loc in found.locations] == [AMS]
        options = reader.get_fulfillment_options(cart({"PHONE": 1}), dam, radius_km=100)
        assert [o.pickup_location_id for o in options.options if o.pickup_location_id] == [AMS]
