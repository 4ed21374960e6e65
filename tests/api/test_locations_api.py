"""LocationService through the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from factories import store, warehouse
from google.protobuf.duration_pb2 import Duration
from omnistock.client import (
    Client,
    HoursException,
    InvalidArgumentError,
    LocationKind,
    NotFoundError,
    WeeklyHours,
)


def test_upserted_location_reads_back_whole(client: Client) -> None:
    location = store(
        "NL-UTR-01",
        hours_exceptions=[HoursException(date="2026-12-25", closed=True)],
        default_safety_stock=2,
        freshness_budget=Duration(seconds=3600),
    )
    client.upsert_locations([location])
    assert client.get_location("NL-UTR-01") == location


def test_upsert_replaces_an_existing_location(client: Client) -> None:
    client.upsert_locations([store("NL-UTR-01", name="Old name")])
    client.upsert_locations([store("NL-UTR-01", name="New name")])
    assert client.get_location("NL-UTR-01").name == "New name"


def test_unknown_location_is_not_found_with_its_name(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_location("NL-NOPE-01")
    assert caught.value.reason == "LOCATION_NOT_FOUND"
    assert caught.value.resource_names == ("NL-NOPE-01",)


def test_list_locations_pages_through_all_in_id_order(client: Client) -> None:
    ids = [f"S-{i:03d}" for i in range(25)]
    client.upsert_locations([store(i) for i in reversed(ids)] + [warehouse("W-1")])
    assert [loc.id for loc in client.list_locations(page_size=7)] == [*ids, "W-1"]
    assert [loc.id for loc in client.list_locations(kind=LocationKind.WAREHOUSE)] == ["W-1"]


def test_bad_locations_get_field_violations_and_nothing_is_written(client: Client) -> None:
    good = store("NL-GOOD-01")
    bad = store(
        "bad id!",
        time_zone="Mars/Olympus",
        weekly_hours=[WeeklyHours(day=1, opens="18:00", closes="09:00")],
        default_safety_stock=-1,
    )
    bad.position.latitude = 91
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_locations([good, bad])
    fields = {v.field for v in caught.value.field_violations}
    assert {
        "locations[1].id",
        "locations[1].time_zone",
        "locations[1].position.latitude",
        "locations[1].weekly_hours[0].closes",
        "locations[1].default_safety_stock",
    } <= fields
    with pytest.raises(NotFoundError):
        client.get_location("NL-GOOD-01")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda loc: loc.ClearField("kind"), "locations[0].kind"),
        (lambda loc: setattr(loc, "name", ""), "locations[0].name"),
        (lambda loc: loc.ClearField("position"), "locations[0].position"),
        (lambda loc: setattr(loc, "country", "Netherlands"), "locations[0].country"),
        (
            lambda loc: setattr(loc, "pickup_lead_time_minutes", -5),
            "locations[0].pickup_lead_time_minutes",
        ),
        (
            lambda loc: loc.hours_exceptions.add(date="2026-13-01", closed=True),
            "locations[0].hours_exceptions[0].date",
        ),
    ],
)
def test_each_bad_location_field_is_named(client: Client, mutate: object, field: str) -> None:
    location = store("NL-X-01")
    mutate(location)  # type: ignore[operator]
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_locations([location])
    assert field in {v.field for v in caught.value.field_violations}


def test_empty_and_duplicate_upserts_are_invalid(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as empty:
        client.upsert_locations([])
    assert [v.field for v in empty.value.field_violations] == ["locations"]
    with pytest.raises(InvalidArgumentError) as twice:
        client.upsert_locations([store("A"), store("A")])
    assert [v.field for v in twice.value.field_violations] == ["locations[1]"]


def test_a_page_token_that_was_never_issued_is_invalid(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        list(client.list_locations(page_token="!!!not-a-token"))
    assert [v.field for v in caught.value.field_violations] == ["page_token"]


@pytest.mark.parametrize("seconds", [-86_399_999_913_601, 10**12, 400 * 24 * 3600])
def test_a_freshness_budget_out_of_range_is_a_field_violation(client: Client, seconds: int) -> None:
    # Found by the fuzzing: such a duration overflowed before it could be checked.
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_locations([store("NL-AMS-01", freshness_budget=Duration(seconds=seconds))])
    assert [v.field for v in caught.value.field_violations] == ["locations[0].freshness_budget"]
