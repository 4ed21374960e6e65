"""Fan-out to many watches, through the SDK on both databases: the hub builds each changed
pair's answer once per exposure and shares it; each watch still says only its own news,
carries its own resume token, and beats only after a quiet heartbeat period."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import NOW
from factories import store, update
from omnistock.client import Client, Exposure, LatLng, WatchEventKind
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
