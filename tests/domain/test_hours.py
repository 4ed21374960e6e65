"""Opening hours and ready-by, in the store's time zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.hours import describe, hours_on, is_open, ready_by
from omnistock.server.domain.locations import HoursException, Location, LocationKind, WeeklyHours

AMS = ZoneInfo("Europe/Amsterdam")


def store(
    opens: str = "09:00",
    closes: str = "18:00",
    *,
    lead: int = 30,
    days: range = range(1, 7),
    exceptions: tuple[HoursException, ...] = (),
) -> Location:
    return Location(
        id="NL-AMS-01",
        kind=LocationKind.STORE,
        name="Amsterdam",
        time_zone="Europe/Amsterdam",
        latitude=52.37,
        longitude=4.89,
        weekly_hours=tuple(
            WeeklyHours(d, time.fromisoformat(opens), time.fromisoformat(closes)) for d in days
        ),
        hours_exceptions=exceptions,
        pickup_lead_time_minutes=lead,
    )


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def test_ready_by_is_now_plus_lead_time_when_open() -> None:
    # Monday 23 November 2026, 10:00 in Amsterdam.
    assert ready_by(store(), local(2026, 11, 23, 10, 0)) == local(2026, 11, 23, 10, 30)


def test_an_order_before_opening_is_ready_at_opening_plus_lead_time() -> None:
    assert ready_by(store(), local(2026, 11, 23, 7, 0)) == local(2026, 11, 23, 9, 30)


def test_an_order_after_the_cutoff_is_ready_the_next_opening_day() -> None:
    # 17:45 + 30 minutes is past 18:00 closing.
    assert ready_by(store(), local(2026, 11, 23, 17, 45)) == local(2026, 11, 24, 9, 30)
    # Saturday evening: closed on Sunday, so Monday.
    assert ready_by(store(), local(2026, 11, 28, 19, 0)) == local(2026, 11, 30, 9, 30)


def test_a_dated_closure_moves_ready_by_to_the_next_open_day() -> None:
    christmas = store(exceptions=(HoursException(date(2026, 12, 25)),))
    assert ready_by(christmas, local(2026, 12, 24, 19, 0)) == local(2026, 12, 26, 9, 30)


def test_dated_special_hours_replace_the_weekly_hours() -> None:
    short_day = store(exceptions=(HoursException(date(2026, 12, 31), time(9, 0), time(16, 0)),))
    assert ready_by(short_day, local(2026, 12, 31, 15, 45)) == local(2027, 1, 1, 9, 30)
    assert hours_on(short_day, date(2026, 12, 31)).closes == local(2026, 12, 31, 16, 0)


def test_times_are_in_the_stores_time_zone_whatever_the_callers() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam
    ready = ready_by(store(), now)
    assert ready is not None and ready.utcoffset() == timedelta(hours=1)
    assert ready == local(2026, 11, 23, 10, 30)


def test_lead_time_across_the_spring_change_counts_real_minutes() -> None:
    # Sunday 29 March 2026: clocks go from 02:00 CET to 03:00 CEST.
    all_night = store("00:00", "23:59", lead=60, days=range(1, 8))
    now = local(2026, 3, 29, 1, 30)  # CET, 00:30 UTC
    ready = ready_by(all_night, now)
    assert ready is not None
    assert ready.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=1)
    assert (ready.hour, ready.minute, ready.utcoffset()) == (3, 30, timedelta(hours=2))


def test_lead_time_across_the_autumn_change_counts_real_minutes() -> None:
    # Sunday 25 October 2026: clocks go from 03:00 CEST back to 02:00 CET.
    all_night = store("00:00", "23:59", lead=60, days=range(1, 8))
    now = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first 02:30
    ready = ready_by(all_night, now)
    assert ready is not None
    assert ready.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert (ready.hour, ready.minute, ready.utcoffset()) == (2, 30, timedelta(hours=1))


def test_opening_on_the_day_clocks_change_is_in_the_new_offset() -> None:
    sunday = store(days=range(7, 8))
    opens = hours_on(sunday, date(2026, 3, 29)).opens
    assert opens is not None and opens.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    opens = hours_on(sunday, date(2026, 10, 25)).opens
    assert opens is not None and opens.astimezone(UTC) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_is_open_follows_the_hours() -> None:
    assert is_open(store(), local(2026, 11, 23, 12, 0))
    assert not is_open(store(), local(2026, 11, 23, 18, 0))
    assert not is_open(store(), local(2026, 11, 29, 12, 0))  # Sunday


def test_a_store_that_never_opens_has_no_ready_by() -> None:
    assert ready_by(store(days=range(0)), local(2026, 11, 23, 10, 0)) is None


def test_ready_by_reads_as_today_tomorrow_or_a_date() -> None:
    now = local(2026, 11, 23, 10, 0)
    assert describe(local(2026, 11, 23, 17, 30), now) == "today 17:30"
    assert describe(local(2026, 11, 24, 9, 30), now) == "tomorrow 09:30"
    assert describe(local(2026, 11, 26, 9, 30), now) == "Thu 26 Nov 09:30"
