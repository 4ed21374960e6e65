"""`omnistock channels load|list` and `omnistock keys create --channel`, run in-process
against a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import store, warehouse
from omnistock.client import ChannelMethod, Client
from omnistock.server.cli import main
from omnistock.server.cli_keys import roles_for
from omnistock.server.domain.security import Role
from omnistock.server.testing import InProcessServer

FILE = {
    "groups": [
        {"groupId": "stores", "displayName": "Stores", "locationIds": ["S1", "S2"]},
        {"group_id": "warehouses", "display_name": "Warehouses", "location_ids": ["W1"]},
        {"groupId": "network", "displayName": "Network", "memberGroupIds": ["stores", "warehouses"]},
    ],
    "channels": [
        {
            "channelId": "web", "displayName": "Web shop", "groupId": "network",
            "methods": ["CHANNEL_METHOD_SHIP", "CHANNEL_METHOD_PICKUP"], "defaultProtection": 2,
            "protections": [{"locationId": "S1", "units": 3}], "sellsIncoming": True,
        },
        {"channelId": "kiosk", "displayName": "Kiosk", "groupId": "stores",
         "methods": ["CHANNEL_METHOD_PICKUP"]},
    ],
}  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "channels.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def locations(client: Client) -> Client:
    client.upsert_locations([store("S1"), store("S2"), warehouse("W1")])
    return client


def test_channels_load_writes_groups_before_channels(
    locations: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "channels", "load", write(tmp_path, FILE), "--target",
                         server.target)  # fmt: skip
    assert (code, err) == (0, "")
    assert out == "loaded 3 groups and 2 channels\n"
    assert locations.get_location_group("network").resolved_location_count == 3
    web = locations.get_channel("web")
    assert (web.default_protection, web.sells_incoming) == (2, True)
    assert [(p.location_id, p.units) for p in web.protections] == [("S1", 3)]
    assert list(locations.get_channel("kiosk").methods) == [ChannelMethod.PICKUP]


def test_channels_list_shows_every_group_and_channel(
    locations: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "channels", "load", write(tmp_path, FILE), "--target", server.target)
    code, out, _ = run(capsys, "channels", "list", "--target", server.target)
    assert code == 0
    assert out.splitlines() == [
        "group network (Network): 3 locations; member groups stores, warehouses",
        "group stores (Stores): 2 locations",
        "group warehouses (Warehouses): 1 locations",
        "channel kiosk (Kiosk): group stores; PICKUP; protection 0; low threshold 3",
        "channel web (Web shop): group network; SHIP, PICKUP; protection 2 (1 per location);"
        " sells incoming; low threshold 3",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ([], 'must be a JSON object with "groups" and/or "channels" lists'),
        ({"groups": [], "extra": []}, 'must be a JSON object with "groups"'),
        ({"groups": {}}, '"groups" must be a list'),
        ({"groups": [{"groupId": "g", "colour": "red"}]}, "groups[0]: "),
        ({"channels": [{"channelId": "c", "methods": ["BY_DRONE"]}]}, "channels[0]: "),
    ],
)
def test_a_bad_file_is_one_line_and_nothing_is_sent(
    locations: Client,
    server: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: object,
    message: str,
) -> None:
    code, _, err = run(capsys, "channels", "load", write(tmp_path, content), "--target",
                         server.target)  # fmt: skip
    assert code == 2
    assert err.startswith("omnistock: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(locations.list_location_groups()) == []


def test_a_file_the_server_refuses_is_one_line_naming_the_field(
    locations: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"groups": [{"groupId": "g", "displayName": "G", "locationIds": ["S1", "NOPE"]}]}
    code, _, err = run(capsys, "channels", "load", write(tmp_path, bad), "--target", server.target)
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "INVALID_ARGUMENT" in err and "groups[0].location_ids: no location 'NOPE'" in err
    assert list(locations.list_location_groups()) == []


def test_a_missing_file_is_a_usage_error(
    server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "channels", "load", tmp_path / "nope.json", "--target",
                       server.target)  # fmt: skip
    assert code == 2 and "nope.json" in err and len(err.splitlines()) == 1


def test_keys_create_binds_a_key_to_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    with InProcessServer(database_url=database_url) as server, Client(server.target) as admin:
        admin.upsert_locations([store("S1"), store("S2"), warehouse("W1")])
        run(capsys, "channels", "load", write(tmp_path, FILE), "--target", server.target)
    database = ["--database-url", database_url]
    code, out, _ = run(capsys, *database, "keys", "create", "kiosk app", "--role", "read",
                       "--channel", "kiosk", "--channel", "web")  # fmt: skip
    assert code == 0
    assert "channels kiosk, web" in out
    code, out, err = run(capsys, *database, "keys", "create", "x", "--role", "read",
                         "--channel", "ghost")  # fmt: skip
    assert code == 2 and "--channel ghost: no such channel" in err
    code, out, _ = run(capsys, *database, "keys", "list")
    assert sum("channels" in line for line in out.splitlines()) == 1


def test_channels_load_sends_100_groups_to_a_call(
    locations: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = [
        {"groupId": f"g{i:03d}", "displayName": "G", "locationIds": ["S1"]} for i in range(150)
    ]
    code, out, _ = run(capsys, "channels", "load", write(tmp_path, {"groups": groups}),
                       "--target", server.target)  # fmt: skip
    assert (code, out) == (0, "loaded 150 groups and 0 channels\n")
    assert len(list(locations.list_location_groups())) == 150
    assert server.server is not None
    server.server.audit.flush()
    calls = [e for e in server.server.audit.recent() if e.method.endswith("UpsertLocationGroups")]
    assert [len(e.detail["groups"]) for e in calls] == [100, 50]


def test_loading_needs_the_admin_role_and_listing_the_read_role() -> None:
    assert roles_for("channels load") == [Role.ADMIN]
    assert roles_for("channels list") == [Role.READ]
