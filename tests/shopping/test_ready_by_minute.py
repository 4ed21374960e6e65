"""Ready-by never promises earlier than the rules, whatever the microsecond of the minute.

A store's answer is kept for the minute. One made at the minute's very first microsecond
must not be reused later in that minute: the cutoff may have passed in between.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import NOW, FixedClock
from factories import store
from omnistock.client import Client, LatLng, WeeklyHours, cart, origin

# Monday 23 November 2026, 12:00 UTC is 13:00 in Amsterdam. Open 09:00-13:30 with a
# 30-minute lead time: the order cutoff is 13:00 local, the very start of NOW's minute.
CUTOFF_AT_NOW = store(
    "AMS-CUTOFF",
    position=LatLng(latitude=52.37, longitude=4.89),
    weekly_hours=[WeeklyHours(day=d, opens="09:00", closes="13:30") for d in range(1, 7)],
    pickup_lead_time_minutes=30,
)
HERE = origin(latitude=52.37, longitude=4.89)


def ready_text(client: Client) -> str:
    result = client.search_nearby(cart({"PHONE": 1}), HERE)
    (only,) = result.locations
    return only.ready_by_text


def test_a_search_at_the_first_microsecond_does_not_hold_its_ready_by_for_the_minute(
    client: Client, clock: FixedClock
) -> None:
    client.upsert_locations([CUTOFF_AT_NOW])
    client.import_snapshot("AMS-CUTOFF", NOW - timedelta(minutes=10), [("PHONE", 5)])
    clock.now = NOW  # hh:mm:00.000000, exactly at the cutoff: still today
    assert ready_text(client) == "today 13:30"
    clock.now = NOW + timedelta(seconds=30)  # the cutoff has passed
    assert ready_text(client) == "tomorrow 09:30"
    clock.now = NOW + timedelta(seconds=59)
    assert ready_text(client) == "tomorrow 09:30"
