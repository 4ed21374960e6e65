"""`omnistock export --channel`: Google's local inventory feed as one channel may sell it,
and the products feed's availability (in_stock, out_of_stock, preorder, backorder) with
its availability_date."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW
from factories import minutes, store, update, warehouse
from omnistock.client import Client
from omnistock.server.cli import main
from omnistock.server.testing import InProcessServer
from omnistock.v1 import channel_pb2

LOCAL_HEADER = "store_code\tid\tquantity\tavailability\tpickup_method\tpickup_sla"


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def web(client: Client) -> Client:
    """Stores AMS (keeps 2 back from web) and UTR and a warehouse in the web channel's
    group; store EHV outside it. PHONE in stock at the stores, CABLE stocked once and
    out now with a purchase order due, NEW never stocked with a purchase order due."""
    client.upsert_locations(
        [store("NL-AMS-01"), store("NL-UTR-01"), store("NL-EHV-01"), warehouse("NL-WH-01")]
    )
    at = NOW - minutes(5)
    client.apply_stock_updates(
        [
            update("NL-AMS-01", "PHONE", 5, at),
            update("NL-UTR-01", "PHONE", 1, at),
            update("NL-EHV-01", "PHONE", 9, at),
            update("NL-WH-01", "PHONE", 7, at),
            update("NL-WH-01", "CABLE", 0, at),
        ]
    )
    due = NOW.date() + timedelta(days=10)
    client.apply_incoming_updates(
        [
            {"location_id": "NL-WH-01", "sku": sku, "line_id": f"PO-{sku}", "quantity": 20,
             "expected_date": due, "source_updated_at": at}
            for sku in ("CABLE", "NEW")
        ]
    )  # fmt: skip
    client.upsert_location_groups(
        [
            channel_pb2.LocationGroup(
                group_id="stores", display_name="Stores", location_ids=["NL-AMS-01", "NL-UTR-01"]
            ),
            channel_pb2.LocationGroup(
                group_id="net", display_name="Network", location_ids=["NL-WH-01"],
                member_group_ids=["stores"],
            ),
        ]
    )  # fmt: skip
    client.upsert_channels(
        [
            channel_pb2.Channel(
                channel_id="web", display_name="Web shop", group_id="net", sells_incoming=True,
                protections=[channel_pb2.LocationProtection(location_id="NL-AMS-01", units=2)],
            ),
            channel_pb2.Channel(channel_id="kiosk", display_name="Kiosk", group_id="stores"),
        ]
    )  # fmt: skip
    return client


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_channels_local_feed_lists_its_stores_at_their_channel_quantities(
    web: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "web.tsv"
    code, said, err = run(
        capsys, "export", "--format", "google-local", "--channel", "web",
        "--target", server.target, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    lines = rows(out)
    assert "\t".join(lines[0]) == LOCAL_HEADER
    # AMS keeps 2 of its 5 back from web; EHV is outside the channel, the warehouse no store.
    assert sorted(line[:4] for line in lines[1:]) == [
        ["NL-AMS-01", "PHONE", "3", "in_stock"],
        ["NL-UTR-01", "PHONE", "1", "limited_availability"],
    ]
    assert "left out" in said and "row outside the channel" in said


def test_a_local_feed_for_a_store_outside_the_channel_is_refused(
    web: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "web.tsv"
    code, _, err = run(
        capsys, "export", "--format", "google-local", "--channel", "web", "--location",
        "NL-EHV-01", "--target", server.target, "--output", out,
    )  # fmt: skip
    assert code == 1
    assert err.strip() == "omnistock export: NL-EHV-01 is not a store of channel web"
    assert not out.exists()


def test_the_products_feed_says_in_stock_backorder_and_preorder_with_their_dates(
    web: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "products.tsv"
    code, said, err = run(
        capsys, "export", "--format", "google-products", "--channel", "web",
        "--target", server.target, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    due = (NOW.date() + timedelta(days=10)).isoformat()
    assert rows(out) == [
        ["id", "availability", "availability_date"],
        ["CABLE", "backorder", f"{due}T00:00Z"],  # stocked before, out now, 20 coming
        ["NEW", "preorder", f"{due}T00:00Z"],  # never stocked anywhere in the channel
        ["PHONE", "in_stock", ""],  # the warehouse ships 7
    ]
    assert said.startswith("wrote 3 rows for channel web (3 locations)")


def test_a_channel_that_sells_no_incoming_says_out_of_stock(
    web: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web.upsert_channels([channel_pb2.Channel(channel_id="app", display_name="App", group_id="net")])
    out = tmp_path / "products.tsv"
    code, _, err = run(
        capsys, "export", "--format", "google-products", "--channel", "app",
        "--target", server.target, "--output", out,
    )  # fmt: skip
    assert code == 0, err
    assert rows(out)[1:] == [
        ["CABLE", "out_of_stock", ""],
        ["PHONE", "in_stock", ""],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "google-products"], "omnistock export: --format google-products needs --channel"),
        (["--format", "csv", "--channel", "web"], "omnistock export: --channel is for the Google feeds, not csv"),
        (["--format", "google-products", "--channel", "nope"], "omnistock export: no channel 'nope'"),
    ],
)  # fmt: skip
def test_channel_export_mistakes_are_one_clear_line(
    web: Client,
    server: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "out.tsv"
    code, _, err = run(capsys, "export", *args, "--target", server.target, "--output", out)
    assert code in (1, 2)
    assert err.strip() == message
    assert not out.exists()
