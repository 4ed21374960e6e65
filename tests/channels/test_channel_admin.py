"""Location groups and channels are kept as given, all or nothing, on both databases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from conftest import NOW
from omnistock.server.domain.channels import Channel, LocationGroup
from omnistock.server.domain.errors import InvalidArgument, NotFound
from omnistock.server.domain.locations import Location, LocationKind
from omnistock.server.service.channels import UNSCOPED, ChannelAdmin
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.database import create_database_engine, migrate
from omnistock.server.store.locations import LocationRepository
from sqlalchemy import Engine

LOCATIONS = ["S1", "S2", "S3", "W1"]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    migrate(engine)
    LocationRepository(engine).upsert_many(
        [
            Location(
                id=i,
                kind=LocationKind.WAREHOUSE if i.startswith("W") else LocationKind.STORE,
                name=i,
                time_zone="UTC",
                latitude=0,
                longitude=0,
            )
            for i in LOCATIONS
        ],
        now=NOW,
    )
    yield engine
    engine.dispose()


@pytest.fixture
def admin(engine: Engine) -> ChannelAdmin:
    def known(ids: Iterable[str]) -> set[str]:
        return set(ids) & set(LOCATIONS)

    return ChannelAdmin(ChannelRepository(engine), known, clock=lambda: NOW)


def group(id: str, *members: str) -> LocationGroup:
    return LocationGroup(id, f"Group {id}", frozenset(members))


def test_a_location_may_be_in_many_groups(admin: ChannelAdmin) -> None:
    admin.upsert_groups([group("all", *LOCATIONS), group("stores", "S1", "S2", "S3")])
    assert admin.group("all", UNSCOPED).group.location_ids == frozenset(LOCATIONS)
    assert admin.group("stores", UNSCOPED).group.location_ids == frozenset({"S1", "S2", "S3"})


def test_upserting_a_group_replaces_its_members(admin: ChannelAdmin) -> None:
    admin.upsert_groups([group("g", "S1", "S2")])
    admin.upsert_groups([group("g", "S3")])
    assert admin.group("g", UNSCOPED).group.location_ids == frozenset({"S3"})


def test_members_can_be_added_and_removed(admin: ChannelAdmin) -> None:
    admin.upsert_groups([group("g", "S1", "S2")])
    changed = admin.change_members("g", add=["W1"], remove=["S1"])
    assert (
        changed.group.location_ids
        == frozenset({"S2", "W1"})
        == admin.group("g", UNSCOPED).group.location_ids
    )


def test_an_unknown_location_rejects_the_whole_call(admin: ChannelAdmin) -> None:
    with pytest.raises(InvalidArgument) as raised:
        admin.upsert_groups([group("ok", "S1"), group("bad", "S1", "NOPE")])
    assert [v.field for v in raised.value.violations] == ["groups[1].location_ids"]
    with pytest.raises(NotFound):
        admin.group("ok", UNSCOPED)  # nothing was written


def test_groups_are_listed_in_id_order_a_page_at_a_time(admin: ChannelAdmin) -> None:
    admin.upsert_groups([group(g, "S1") for g in ("c", "a", "b")])
    assert [g.group.id for g in admin.group_page(UNSCOPED, after_id="", limit=2)] == ["a", "b"]
    assert [g.group.id for g in admin.group_page(UNSCOPED, after_id="b", limit=2)] == ["c"]


def test_a_channel_keeps_its_group_protection_incoming_rule_and_thresholds(
    admin: ChannelAdmin,
) -> None:
    admin.upsert_groups([group("all", *LOCATIONS)])
    web = Channel(
        "web", "Web shop", "all", protection={"S1": 2}, default_protection=1,
        sells_incoming=True, low_threshold=5,
    )  # fmt: skip
    admin.upsert_channels([web])
    assert admin.channel("web", UNSCOPED) == web
    assert [c.id for c in admin.channel_page(UNSCOPED, after_id="", limit=10)] == ["web"]


def test_a_channel_needs_a_known_group_and_protection_inside_it(admin: ChannelAdmin) -> None:
    admin.upsert_groups([group("stores", "S1", "S2")])
    bad = [
        Channel("a", "A", "nope"),
        Channel("b", "B", "stores", protection={"W1": 2}),
        Channel("c", "C", "stores", default_protection=-1, low_threshold=0),
    ]
    with pytest.raises(InvalidArgument) as raised:
        admin.upsert_channels(bad)
    assert [v.field for v in raised.value.violations] == [
        "channels[0].group_id",
        "channels[1].protections[0].location_id",
        "channels[2].default_protection",
        "channels[2].low_threshold",
    ]
    with pytest.raises(NotFound):
        admin.channel("a", UNSCOPED)
