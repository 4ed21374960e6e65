"""ChannelService through the SDK, on SQLite and PostgreSQL: groups and channels are kept
as given, all or nothing; bad input gets field violations or NOT_FOUND."""

from __future__ import annotations

import asyncio

import pytest
from conftest import NOW
from factories import store, warehouse
from omnistock.client import (
    AsyncClient,
    Channel,
    ChannelMethod,
    Client,
    InvalidArgumentError,
    LocationGroup,
    LocationProtection,
    NotFoundError,
)
from omnistock.server.testing import InProcessServer

STORES = ["S1", "S2", "S3"]
WAREHOUSES = ["W1"]


@pytest.fixture
def client(server: InProcessServer) -> Client:
    with Client(server.target) as sdk:
        sdk.upsert_locations([store(i) for i in STORES] + [warehouse(i) for i in WAREHOUSES])
        yield sdk


def group(group_id: str, *locations: str, members: tuple[str, ...] = ()) -> LocationGroup:
    return LocationGroup(
        group_id=group_id,
        display_name=f"Group {group_id}",
        location_ids=list(locations),
        member_group_ids=list(members),
    )


def channel(channel_id: str, group_id: str, **fields: object) -> Channel:
    return Channel(channel_id=channel_id, display_name=channel_id.title(), group_id=group_id,
                   **fields)  # fmt: skip


def violations(caught: pytest.ExceptionInfo[InvalidArgumentError]) -> dict[str, str]:
    return {v.field: v.description for v in caught.value.field_violations}


def test_a_group_reads_back_as_written_with_its_resolved_count(client: Client) -> None:
    [written] = client.upsert_location_groups([group("stores", "S2", "S1")])
    assert written.location_ids == ["S1", "S2"]
    assert written.resolved_location_count == 2
    assert written.update_time.ToDatetime().year == NOW.year
    read = client.get_location_group("stores")
    assert read == written


def test_a_group_takes_in_its_member_groups_locations_each_once(client: Client) -> None:
    client.upsert_location_groups(
        [
            group("stores", *STORES),
            group("warehouses", *WAREHOUSES),
            group("network", "S1", members=("stores", "warehouses")),
        ]
    )
    network = client.get_location_group("network")
    assert network.member_group_ids == ["stores", "warehouses"]
    assert network.resolved_location_count == 4


def test_a_group_that_contains_itself_directly_is_invalid(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_location_groups([group("loop", "S1", members=("loop",))])
    assert "loop -> loop" in violations(caught)["groups[0].member_group_ids"]


def test_a_group_that_contains_itself_through_a_member_group_is_invalid(client: Client) -> None:
    client.upsert_location_groups([group("a", "S1"), group("b", "S2", members=("a",))])
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_location_groups([group("a", "S1", members=("b",))])
    assert "a -> b -> a" in violations(caught)["groups[0].member_group_ids"]
    assert client.get_location_group("a").member_group_ids == []  # nothing written
    with pytest.raises(InvalidArgumentError) as caught:
        client.update_location_group_members("a", add_group_ids=["b"])
    assert "a -> b -> a" in violations(caught)["add_group_ids"]


def test_an_unknown_location_or_member_group_rejects_the_whole_call(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_location_groups(
            [group("ok", "S1"), group("bad", "S1", "NOPE", members=("ghost",))]
        )
    found = violations(caught)
    assert "'NOPE'" in found["groups[1].location_ids"]
    assert "'ghost'" in found["groups[1].member_group_ids"]
    with pytest.raises(NotFoundError):
        client.get_location_group("ok")


def test_ids_names_and_duplicates_are_checked(client: Client) -> None:
    bad = LocationGroup(group_id="bad id!", display_name=" ", location_ids=["S1", "S1"])
    twice = group("g", "S1")
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_location_groups([bad, twice, twice])
    assert set(violations(caught)) == {
        "groups[0].group_id",
        "groups[0].display_name",
        "groups[0].location_ids[1]",
        "groups[2].group_id",
    }


def test_an_upsert_holds_1_to_100_groups(client: Client) -> None:
    for groups in ([], [group(f"g{i}", "S1") for i in range(101)]):
        with pytest.raises(InvalidArgumentError) as caught:
            client.upsert_location_groups(groups)
        assert "groups" in violations(caught)


def test_members_are_added_and_removed_all_or_nothing(client: Client) -> None:
    client.upsert_location_groups([group("g", "S1", "S2"), group("w", "W1")])
    changed = client.update_location_group_members(
        "g", ["S3"], ["S1", "not-a-member"], add_group_ids=["w"]
    )
    assert changed.location_ids == ["S2", "S3"]
    assert changed.member_group_ids == ["w"]
    assert changed.resolved_location_count == 3
    with pytest.raises(InvalidArgumentError) as caught:
        client.update_location_group_members("g", ["NOPE"], ["S2"])
    assert "add_location_ids" in violations(caught)
    assert client.get_location_group("g").location_ids == ["S2", "S3"]


def test_an_unknown_group_is_not_found(client: Client) -> None:
    for call in (
        lambda: client.get_location_group("ghost"),
        lambda: client.update_location_group_members("ghost", ["S1"]),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.reason == "GROUP_NOT_FOUND"


def test_groups_are_listed_in_id_order_a_page_at_a_time(client: Client) -> None:
    client.upsert_location_groups([group(g, "S1") for g in ("c", "a", "d", "b")])
    assert [g.group_id for g in client.list_location_groups(page_size=3)] == ["a", "b", "c", "d"]
    first = client.list_location_groups(page_size=2).pages
    assert [[g.group_id for g in page.groups] for page in first] == [["a", "b"], ["c", "d"]]


def test_a_channel_reads_back_with_its_methods_protections_and_rules(client: Client) -> None:
    client.upsert_location_groups([group("all", *STORES, *WAREHOUSES)])
    web = channel(
        "web", "all", methods=[ChannelMethod.PICKUP, ChannelMethod.SHIP], default_protection=2,
        protections=[LocationProtection(location_id="S2", units=5)], sells_incoming=True,
        low_threshold=4,
    )  # fmt: skip
    [written] = client.upsert_channels([web])
    read = client.get_channel("web")
    assert read == written
    assert list(read.methods) == [ChannelMethod.SHIP, ChannelMethod.PICKUP]
    assert (read.default_protection, read.sells_incoming, read.low_threshold) == (2, True, 4)
    assert [(p.location_id, p.units) for p in read.protections] == [("S2", 5)]


def test_no_methods_means_both_and_low_threshold_0_means_3(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    [written] = client.upsert_channels([channel("app", "all")])
    assert list(written.methods) == [ChannelMethod.SHIP, ChannelMethod.PICKUP]
    assert written.low_threshold == 3
    [kiosk] = client.upsert_channels([channel("kiosk", "all", methods=[ChannelMethod.PICKUP])])
    assert list(client.get_channel("kiosk").methods) == [ChannelMethod.PICKUP] == kiosk.methods


def test_a_method_named_twice_or_unspecified_is_invalid(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_channels(
            [channel("web", "all", methods=[ChannelMethod.SHIP, ChannelMethod.SHIP, 0])]
        )
    assert set(violations(caught)) == {"channels[0].methods[1]", "channels[0].methods[2]"}


def test_a_protection_outside_the_channels_resolved_group_is_invalid(client: Client) -> None:
    client.upsert_location_groups(
        [group("stores", "S1"), group("network", "S2", members=("stores",))]
    )
    inside = [LocationProtection(location_id="S1", units=2)]  # through the member group
    client.upsert_channels([channel("web", "network", protections=inside)])
    outside = [LocationProtection(location_id="W1", units=2)]
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_channels([channel("web", "network", protections=outside)])
    assert (
        "'W1' is not in group 'network'"
        in violations(caught)["channels[0].protections[0].location_id"]
    )
    assert [p.location_id for p in client.get_channel("web").protections] == ["S1"]


def test_a_protection_above_stock_is_not_an_error(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    big = [LocationProtection(location_id="S1", units=10**12)]
    [written] = client.upsert_channels([channel("web", "all", protections=big)])
    assert written.protections[0].units == 10**12


def test_bad_channels_get_a_violation_per_field_and_nothing_is_written(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    twice = [LocationProtection(location_id="S1", units=1)] * 2
    bad = [
        channel("ok", "all"),
        channel("a", "ghost"),
        channel("b", "all", default_protection=-1, low_threshold=-2, protections=twice),
        Channel(channel_id="", display_name="", group_id="all"),
        channel("ok", "all"),
    ]
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_channels(bad)
    assert set(violations(caught)) == {
        "channels[1].group_id",
        "channels[2].default_protection",
        "channels[2].low_threshold",
        "channels[2].protections[1].location_id",
        "channels[3].channel_id",
        "channels[3].display_name",
        "channels[4].channel_id",
    }
    with pytest.raises(NotFoundError) as missing:
        client.get_channel("ok")
    assert missing.value.reason == "CHANNEL_NOT_FOUND"


def test_channels_are_listed_in_id_order_a_page_at_a_time(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    client.upsert_channels([channel(c, "all") for c in ("web", "app", "kiosk")])
    assert [c.channel_id for c in client.list_channels(page_size=2)] == ["app", "kiosk", "web"]


def test_every_write_is_in_the_audit_log(server: InProcessServer, client: Client) -> None:
    assert server.server is not None
    client.upsert_location_groups([group("all", "S1")])
    client.update_location_group_members("all", ["S2"])
    client.upsert_channels([channel("web", "all")])
    server.server.audit.flush()
    methods = [e.method.rsplit("/", 1)[1] for e in server.server.audit.recent()]
    assert methods[-3:] == ["UpsertLocationGroups", "UpdateLocationGroupMembers", "UpsertChannels"]


def test_a_group_names_at_most_20000_locations_and_100_member_groups(client: Client) -> None:
    client.upsert_location_groups([group(f"m{i}") for i in range(100)])
    client.upsert_location_groups([group("m100")])
    too_many = group(
        "g", *(f"L{i}" for i in range(20_001)), members=tuple(f"m{i}" for i in range(101))
    )
    with pytest.raises(InvalidArgumentError) as caught:
        client.upsert_location_groups([too_many])
    found = violations(caught)
    assert found["groups[0].location_ids"] == "must hold at most 20,000 locations"
    assert found["groups[0].member_group_ids"] == "must hold at most 100 groups"
    hundred = group("h", members=tuple(f"m{i}" for i in range(100)))
    assert client.upsert_location_groups([hundred])[0].member_group_ids == sorted(
        hundred.member_group_ids
    )


def test_an_unknown_member_group_cannot_be_added(client: Client) -> None:
    client.upsert_location_groups([group("g", "S1")])
    with pytest.raises(InvalidArgumentError) as caught:
        client.update_location_group_members("g", add_group_ids=["ghost"])
    assert violations(caught) == {"add_group_ids": "no group 'ghost'"}


def test_an_upsert_holds_1_to_100_channels(client: Client) -> None:
    client.upsert_location_groups([group("all", "S1")])
    for channels in ([], [channel(f"c{i}", "all") for i in range(101)]):
        with pytest.raises(InvalidArgumentError) as caught:
            client.upsert_channels(channels)
        assert "channels" in violations(caught)


def test_a_page_holds_100_by_default_and_at_most_1000(client: Client) -> None:
    client.upsert_location_groups([group(f"a{i:03d}") for i in range(100)])
    client.upsert_location_groups([group("b")])
    first = client.list_location_groups().pages
    assert [len(page.groups) for page in first] == [100, 1]
    for call in (client.list_location_groups, client.list_channels):
        with pytest.raises(InvalidArgumentError) as caught:
            list(call(page_size=1001))
        assert "page_size" in violations(caught)


def test_the_async_client_manages_groups_and_channels_too(
    client: Client, server: InProcessServer
) -> None:
    async def main() -> tuple[list[str], list[str], int]:
        async with AsyncClient(server.target) as sdk:
            await sdk.upsert_location_groups([group("g", "S1")])
            changed = await sdk.update_location_group_members("g", ["S2"])
            await sdk.upsert_channels([channel("web", "g")])
            read = await sdk.get_channel("web")
            groups = [g.group_id async for g in sdk.list_location_groups()]
            channels = [c.channel_id async for c in sdk.list_channels()]
            assert read.group_id == (await sdk.get_location_group("g")).group_id
            return groups, channels, changed.resolved_location_count

    assert asyncio.run(main()) == (["g"], ["web"], 2)
