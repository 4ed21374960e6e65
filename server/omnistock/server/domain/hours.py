"""Opening hours and ready-by times, in each location's own time zone.

Arithmetic on times is done in UTC and converted back, so that adding a lead
time across a daylight-saving change counts real minutes, not wall-clock ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnistock.server.domain.locations import Location

# How far ahead to look for the next opening before giving up (a long closure).
SEARCH_DAYS = 21


@dataclass(frozen=True, slots=True)
class DayHours:
    """The hours of one local date: opens and closes as aware datetimes, or closed."""

    date: date
    opens: datetime | None
    closes: datetime | None

    @property
    def closed(self) -> bool:
        return self.opens is None


def hours_on(location: Location, day: date) -> DayHours:
    """A dated exception if there is one for ``day``, else the weekly hours."""
    zone = ZoneInfo(location.time_zone)
    for exception in location.hours_exceptions:
        if exception.date == day:
            if exception.opens is None or exception.closes is None:
                return DayHours(day, None, None)
            return DayHours(
                day, _local(day, exception.opens, zone), _local(day, exception.closes, zone)
            )
    for weekly in location.weekly_hours:
        if weekly.weekday == day.isoweekday():
            return DayHours(day, _local(day, weekly.opens, zone), _local(day, weekly.closes, zone))
    return DayHours(day, None, None)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # A wall time that does not exist (the hour skipped in spring) resolves forward.
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone)
    round_trip = aware.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != naive:
        aware = (naive + timedelta(hours=1)).replace(tzinfo=zone)
    return aware


def is_open(location: Location, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(location.time_zone))
    today = hours_on(location, local.date())
    return (
        today.opens is not None and today.closes is not None and today.opens <= local < today.closes
    )


def ready_by(
    location: Location, now: datetime, *, lead: timedelta | None = None
) -> datetime | None:
    """When an order placed at ``now`` can be picked up, in the location's time zone.

    The order is picked and packed during opening hours and takes the location's
    pickup lead time. If that would end after today's closing (the order
    cutoff is closing time minus the lead time), it is ready at the next opening
    plus the lead time. None when the location opens no day in the next three weeks.
    """
    zone = ZoneInfo(location.time_zone)
    lead = timedelta(minutes=location.pickup_lead_time_minutes) if lead is None else lead
    local_now = now.astimezone(zone)
    for offset in range(SEARCH_DAYS):
        day = hours_on(location, local_now.date() + timedelta(days=offset))
        if day.opens is None or day.closes is None:
            continue
        start = max(day.opens, local_now)
        ready = (start.astimezone(UTC) + lead).astimezone(zone)
        if ready <= day.closes:
            return ready
    return None


def next_opening_on_or_after(location: Location, when: datetime) -> datetime | None:
    """The first moment at or after ``when`` that the location is open."""
    return ready_by(location, when, lead=timedelta(0))


def describe(ready: datetime, now: datetime) -> str:
    """ "today 17:30", "tomorrow 10:00" or "Sat 23 Nov 10:00", in the ready time's own zone."""
    local_now = now.astimezone(ready.tzinfo)
    days = (ready.date() - local_now.date()).days
    clock = ready.strftime("%H:%M")
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    return f"{ready.strftime('%a')} {ready.day} {ready.strftime('%b')} {clock}"
