"""Fan-out to many watches, through the SDK on both databases: the hub builds each changed
pair's answer once per exposure and shares it; each watch still says only its own news,
carries its own resume token, and beats only after a quiet heartbeat period."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import NOW
from factories import store, update
from omnistock.client import Client, Exposure, LatLng, WatchEventKind
from omnistock.server.testing import InProcessServer
from test_watch_api import Reader, states

AMS, UTR = "NL-AMS-01", "NL-UTR-01"
BEFORE = NOW - timedelta(minutes=30)


@pytest.fixture
def shop(client: Client) -> Client:
    client.upsert_locations(
        [
            store(AMS, position=LatLng(latitude=52.37, longitude=4.89)),
            store(UTR, position=LatLng(latitude=52.09, longitude=5.12)),
        ]
    )
    client.apply_stock_updates(
        [update(AMS, "PHONE", 50, BEFORE)]
        + [update(UTR, f"SKU-{i}", 10 + i, BEFORE) for i in range(20)]
    )
    return client


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    opened: list[Reader] = []
    yield opened
    for reader in opened:
        reader.watch.cancel()


def test_every_watch_of_a_changed_pair_hears_it_once_as_its_exposure_allows(
    shop: Client, readers: list[Reader]
) -> None:
    # 20 watches share the hot pair, each with a pair of its own; half EXACT, half BANDED.
    def pairs(i: int) -> list[tuple[str, str]]:
        return [("PHONE", AMS), (f"SKU-{i}", UTR)]

    def exposure(i: int) -> Exposure:
        return Exposure.EXACT if i % 2 == 0 else Exposure.BANDED

    for i in range(20):
        readers.append(Reader(shop.watch_availability(pairs(i), exposure=exposure(i))))
    tokens = [reader.next().resume_token for reader in readers]
    assert len(set(tokens)) == 20  # each watch's own request and state

    shop.apply_stock_updates([update(AMS, "PHONE", 40, BEFORE + timedelta(minutes=1))])
    for i, reader in enumerate(readers):
        if exposure(i) is Exposure.EXACT:
            assert states(reader.next_change()) == [("PHONE", AMS, "IN_STOCK", 40)]
    shop.apply_stock_updates([update(AMS, "PHONE", 1, BEFORE + timedelta(minutes=2))])
    shop.apply_stock_updates([update(UTR, "SKU-3", 0, BEFORE + timedelta(minutes=2))])
    last = []
    for i, reader in enumerate(readers):
        change = reader.next_change()
        heard = states(change)
        if i == 3:  # its own pair changed too: in the same message or the next
            while len(heard) < 2:
                change = reader.next_change()
                heard += states(change)
            assert ("SKU-3", UTR, "OUT_OF_STOCK", 0) in heard
            heard.remove(("SKU-3", UTR, "OUT_OF_STOCK", 0))
        if exposure(i) is Exposure.EXACT:
            assert heard == [("PHONE", AMS, "LIMITED", 1)]
        else:  # 40 was IN_STOCK as 50 was: banded watches hear only the band's change
            assert heard == [("PHONE", AMS, "LIMITED", 0)]
        last.append(change.resume_token)
    for reader in readers:
        assert reader.quiet(0.3)  # once each: nothing more

    # Each token says what its own stream said: resuming with it hears nothing new.
    for i, token in enumerate(last):
        again = Reader(shop.watch_availability(pairs(i), exposure=exposure(i), resume_token=token))
        readers.append(again)
        nothing = again.next()
        assert nothing.kind == WatchEventKind.CHANGE and not nothing.availabilities
    # And the first tokens say what changed since the first state, as that exposure sees it.
    resumed = Reader(
        shop.watch_availability(pairs(3), exposure=exposure(3), resume_token=tokens[3])
    )
    readers.append(resumed)
    assert states(resumed.next()) == [
        ("PHONE", AMS, "LIMITED", 0),
        ("SKU-3", UTR, "OUT_OF_STOCK", 0),
    ]


def test_heartbeats_come_only_after_a_quiet_heartbeat_period(
    shop: Client, readers: list[Reader]
) -> None:
    reader = Reader(
        shop.watch_availability([("PHONE", AMS)], exposure=Exposure.EXACT, heartbeat_seconds=2)
    )
    readers.append(reader)
    reader.next()
    # A change every 0.5 s for 3 s: each pushes the heartbeat back, so none comes.
    for k in range(6):
        shop.apply_stock_updates([update(AMS, "PHONE", 30 - k, BEFORE + timedelta(seconds=k + 1))])
        change = reader.next()
        assert change.kind == WatchEventKind.CHANGE, (
            f"a {WatchEventKind(change.kind).name} before change {k}"
        )
        assert states(change) == [("PHONE", AMS, "IN_STOCK", 30 - k)]
        time.sleep(0.5)
    last = time.monotonic() - 0.5
    beat = reader.next(timeout=5)
    assert beat.kind == WatchEventKind.HEARTBEAT
    assert time.monotonic() - last > 1.5  # two seconds after the last CHANGE, less jitter
    beat = reader.next(timeout=5)  # and then one each quiet period
    assert beat.kind == WatchEventKind.HEARTBEAT


def test_resume_tokens_keep_the_format_earlier_servers_made_and_read(
    shop: Client, readers: list[Reader]
) -> None:
    # The token is base64url (unpadded) of compact JSON: the request's key and, per pair in
    # watch order, [status, quantity] as last said. A token made by an earlier server (which
    # dumped that JSON whole) resumes on this one, and this one's on that one.
    pairs = [("PHONE", AMS), ("SKU-1", UTR), ("SKU-2", UTR)]
    reader = Reader(shop.watch_availability(pairs, exposure=Exposure.EXACT))
    readers.append(reader)
    reader.next()
    shop.apply_stock_updates([update(UTR, "SKU-2", 5, BEFORE + timedelta(minutes=1))])
    token = reader.next_change().resume_token
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    said = json.loads(raw)
    assert said["s"] == [[1, 50], [1, 11], [1, 5]]  # IN_STOCK, with the quantities said
    assert raw == json.dumps(said, separators=(",", ":")).encode()


def test_when_the_shared_read_fails_each_watch_reads_the_change_itself(
    shop: Client, server: InProcessServer, readers: list[Reader], monkeypatch: pytest.MonkeyPatch
) -> None:
    watches = [
        Reader(shop.watch_availability([("PHONE", AMS)], exposure=Exposure.EXACT)) for _ in range(3)
    ]
    readers.extend(watches)
    for reader in watches:
        reader.next()
    shop.apply_stock_updates([update(AMS, "PHONE", 40, BEFORE + timedelta(minutes=1))])
    for reader in watches:
        assert states(reader.next_change()) == [("PHONE", AMS, "IN_STOCK", 40)]

    def fail(pairs: object) -> None:
        raise OSError("the database went away")

    assert server.server is not None
    monkeypatch.setattr(server.server.availability, "warm", fail)
    shop.apply_stock_updates([update(AMS, "PHONE", 2, BEFORE + timedelta(minutes=2))])
    for reader in watches:  # the new state, never the answer built for the change before
        assert states(reader.next_change()) == [("PHONE", AMS, "LIMITED", 2)]
