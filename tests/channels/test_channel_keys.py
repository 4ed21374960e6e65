"""Keys bound to channels, through the SDK on SQLite and PostgreSQL: such a key sees its
channels and their groups, and nothing of locations outside them; a membership change
shows at once, in this process and in another one on the same database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from factories import store, warehouse
from omnistock.client import (
    Channel,
    Client,
    LocationGroup,
    LocationProtection,
    PermissionDeniedError,
)
from omnistock.server.config import ServerConfig
from omnistock.server.domain.security import Role
from omnistock.server.domain.stock import Exposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

AMS, UTR, WH = "NL-AMS-01", "NL-UTR-01", "NL-WH-01"
NOW = datetime.now(UTC)


@dataclass
class World:
    server: InProcessServer
    admin: Client
    make_key: Callable[..., str]

    def client(self, key: str) -> Client:
        return Client(self.server.target, api_key=key)


def _config(database_url: str) -> ServerConfig:
    # Keys are trusted for a minute: what a test sees sooner comes from the change bus.
    return ServerConfig(listen="127.0.0.1:0", database_url=database_url, key_cache_seconds=60)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with InProcessServer(_config(database_url)) as server:
        assert server.server is not None
        keys = KeyRepository(server.server.engine)

        def make_key(
            *roles: Role, channels: list[str] | None = None, locations: list[str] | None = None
        ) -> str:
            _, text = keys.create(
                "test", roles or [Role.READ], locations=locations, exposure=Exposure.EXACT,
                rate_per_second=10_000.0, burst=10_000, now=NOW, channels=channels,
            )  # fmt: skip
            return text

        with Client(server.target, api_key=make_key(Role.ADMIN)) as admin:
            admin.upsert_locations([store(AMS), store(UTR), warehouse(WH)])
            admin.upsert_location_groups(
                [
                    LocationGroup(group_id="north", display_name="North", location_ids=[AMS]),
                    LocationGroup(group_id="wh", display_name="Warehouses", location_ids=[WH]),
                    LocationGroup(group_id="all", display_name="All", location_ids=[AMS, UTR, WH]),
                ]
            )
            admin.upsert_channels(
                [
                    Channel(channel_id="web", display_name="Web", group_id="north"),
                    Channel(channel_id="app", display_name="App", group_id="wh"),
                    Channel(
                        channel_id="kiosk",
                        display_name="Kiosk",
                        group_id="all",
                        protections=[
                            LocationProtection(location_id=AMS, units=1),
                            LocationProtection(location_id=UTR, units=2),
                        ],
                    ),
                ]
            )
            yield World(server, admin, make_key)


def _denied(call: Callable[[], object]) -> PermissionDeniedError:
    with pytest.raises(PermissionDeniedError) as caught:
        call()
    return caught.value


def test_a_key_bound_to_a_channel_cannot_read_a_location_outside_its_group(world: World) -> None:
    with world.client(world.make_key(channels=["web"])) as web:
        assert web.get_location(AMS).id == AMS
        assert _denied(lambda: web.get_location(UTR)).reason == "LOCATION_NOT_IN_SCOPE"
        _denied(lambda: web.get_availability("PHONE", [WH]))
        assert [location.id for location in web.list_locations()] == [AMS]


def test_a_key_bound_to_channels_and_locations_sees_where_they_meet(world: World) -> None:
    key = world.make_key(channels=["kiosk"], locations=[UTR, "NL-ELSEWHERE"])
    with world.client(key) as kiosk:
        assert [location.id for location in kiosk.list_locations()] == [UTR]
        _denied(lambda: kiosk.get_location(AMS))


def test_a_location_added_to_the_group_becomes_visible_at_once(world: World) -> None:
    with world.client(world.make_key(channels=["web"])) as web:
        _denied(lambda: web.get_location(UTR))  # the key's check is cached now
        world.admin.update_location_group_members("north", [UTR])
        assert web.get_location(UTR).id == UTR
        world.admin.update_location_group_members("north", add_group_ids=["wh"])
        assert web.get_location(WH).id == WH  # through a member group
        world.admin.update_location_group_members("north", remove_location_ids=[UTR])
        _denied(lambda: web.get_location(UTR))


def test_a_channel_moved_to_another_group_moves_what_its_keys_see(world: World) -> None:
    with world.client(world.make_key(channels=["web"])) as web:
        assert web.get_location(AMS).id == AMS
        world.admin.upsert_channels([Channel(channel_id="web", display_name="Web", group_id="wh")])
        _denied(lambda: web.get_location(AMS))
        assert web.get_location(WH).id == WH


def test_a_membership_change_in_another_process_shows_within_the_bus_delay(
    world: World, database_url: str
) -> None:
    with (
        InProcessServer(_config(database_url)) as other,
        Client(other.target, api_key=world.make_key(channels=["web"])) as web,
    ):
        _denied(lambda: web.get_location(UTR))
        world.admin.update_location_group_members("north", [UTR])
        deadline = time.monotonic() + 2  # far below the key cache time (60 s)
        while True:
            try:
                assert web.get_location(UTR).id == UTR
                break
            except PermissionDeniedError:
                assert time.monotonic() < deadline, "the other process never saw the change"
                time.sleep(0.02)


def test_a_bound_key_sees_only_its_channels_and_their_groups(world: World) -> None:
    world.admin.update_location_group_members("north", add_group_ids=["wh"])
    with world.client(world.make_key(channels=["web"])) as web:
        assert [c.channel_id for c in web.list_channels()] == ["web"]
        assert [g.group_id for g in web.list_location_groups()] == ["north", "wh"]
        assert web.get_location_group("wh").location_ids == [WH]  # a member group
        assert web.get_channel("web").group_id == "north"


def test_an_unknown_channel_is_denied_exactly_as_a_known_one_outside(world: World) -> None:
    with world.client(world.make_key(channels=["web"])) as web:
        known = _denied(lambda: web.get_channel("app"))
        unknown = _denied(lambda: web.get_channel("ghost"))
        assert known.reason == unknown.reason == "CHANNEL_NOT_IN_SCOPE"
        assert str(known).replace("app", "<id>") == str(unknown).replace("ghost", "<id>")
        group = _denied(lambda: web.get_location_group("all"))
        absent = _denied(lambda: web.get_location_group("ghost"))
        assert group.reason == absent.reason == "GROUP_NOT_IN_SCOPE"
        assert str(group).replace("all", "<id>") == str(absent).replace("ghost", "<id>")


def test_a_bound_key_may_not_write_a_channel_outside_its_own(world: World) -> None:
    with world.client(world.make_key(Role.ADMIN, channels=["web"])) as web:
        for channel_id in ("app", "ghost"):
            denied = _denied(
                lambda c=channel_id: web.upsert_channels(
                    [Channel(channel_id=c, display_name="X", group_id="north")]
                )
            )
            assert denied.reason == "CHANNEL_NOT_IN_SCOPE"
    assert world.admin.get_channel("app").group_id == "wh"


def test_a_scoped_key_sees_groups_and_channels_without_hidden_locations(world: World) -> None:
    with world.client(world.make_key(locations=[AMS])) as scoped:
        group = scoped.get_location_group("all")
        assert (list(group.location_ids), group.resolved_location_count) == ([AMS], 1)
        kiosk = scoped.get_channel("kiosk")
        assert [p.location_id for p in kiosk.protections] == [AMS]
        listed = {g.group_id: list(g.location_ids) for g in scoped.list_location_groups()}
        assert listed == {"all": [AMS], "north": [AMS], "wh": []}
