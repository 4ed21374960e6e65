"""Google's local product inventory feed: what an import makes of its quantity and
availability, what an export writes, and that an export re-imported changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, FixedClock
from factories import minutes, store, update, warehouse
from google.protobuf.duration_pb2 import Duration
from omnistock.client import Capabilities, Client, Exposure, StockStatus
from omnistock.server.cli import main
from omnistock.server.service.limits import MAX_QUANTITY
from omnistock.server.testing import InProcessServer

AS_OF = "2026-11-23T12:00:00+00:00"  # NOW
HEADER = ["store_code", "id", "quantity", "availability", "pickup_method", "pickup_sla"]


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def feed(directory: Path, rows: list[list[str]], name: str = "local.tsv") -> Path:
    path = directory / name
    path.write_text("".join("\t".join(row) + "\n" for row in [HEADER, *rows]), encoding="utf-8")
    return path


def import_feed(
    capsys: pytest.CaptureFixture[str], server: InProcessServer, path: Path, as_of: str = AS_OF
) -> tuple[int, str, str]:
    return run(
        capsys, "import", path, "--format", "google-local", "--mode", "delta",
        "--as-of", as_of, "--target", server.target,
    )  # fmt: skip


def export_feed(
    capsys: pytest.CaptureFixture[str], server: InProcessServer, path: Path
) -> tuple[int, str, str]:
    return run(
        capsys, "export", "--format", "google-local", "--target", server.target, "--output", path
    )


def rejects_of(path: Path) -> list[tuple[str, str]]:
    lines = Path(f"{path}.rejects").read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t", 2)[:2]) for line in lines]  # type: ignore[misc]


def answers(client: Client, location: str = "") -> dict[tuple[str, str], tuple[int, int, int]]:
    """Every record's (available to sell, band, on_hand), from an exact export."""
    return {
        (a.location_id, a.sku): (a.available_to_sell, a.status, a.on_hand)
        for a in client.export_stock(location)
    }


def test_a_google_local_import_rejects_what_the_spec_does_not_allow(
    client: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.upsert_locations([store("NL-AMS-01")])
    path = feed(
        tmp_path,
        [
            ["NL-AMS-01", "SKU-1", "-3", "in_stock", "buy", "same_day"],  # 2: negative
            ["NL-AMS-01", "SKU-2", "4", "plenty", "buy", "same_day"],  # 3: no such value
            ["NL-AMS-01", "SKU-3", "1.5", "in_stock", "buy", "same_day"],  # 4: not whole
            ["NL-AMS-01", "SKU-4", "", "limited_availability", "buy", "same_day"],  # 5
            ["NL-AMS-01", "SKU-5", "4", "in stock", "buy", "same_day"],  # the spaced spelling
            ["NL-XXX-01", "SKU-1", "4", "in_stock", "buy", "same_day"],  # 7: no such store
        ],
    )
    code, out, err = import_feed(capsys, server, path)
    assert code == 1, err  # lines were rejected (--allow-rejects would make it 0)
    assert rejects_of(path) == [
        ("2", f"quantity -3 must be within [0, {MAX_QUANTITY:,}]"),
        ("3", "availability 'plenty' is not one of in_stock, limited_availability,"
              " on_display_to_order, out_of_stock"),
        ("4", "quantity '1.5' is not a whole number"),
        ("5", "quantity is required"),
        ("7", "LOCATION_NOT_FOUND: no location 'NL-XXX-01'"),
    ]  # fmt: skip
    assert out.splitlines() == [f"applied 1  stale 0  rejected 5 (see {path}.rejects)"]
    assert answers(client) == {("NL-AMS-01", "SKU-5"): (4, StockStatus.IN_STOCK, 4)}


def test_availability_bounds_what_the_quantity_offers(
    client: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.upsert_locations([store("NL-AMS-01")])
    path = feed(
        tmp_path,
        [
            ["NL-AMS-01", "OUT", "3", "out_of_stock", "buy", "same_day"],
            ["NL-AMS-01", "LIMITED", "5", "limited_availability", "buy", "same_day"],
            ["NL-AMS-01", "LIMITED-1", "1", "limited_availability", "buy", "same_day"],
            ["NL-AMS-01", "IN-ZERO", "0", "in_stock", "buy", "same_day"],
            ["NL-AMS-01", "DISPLAY", "4", "on_display_to_order", "buy", "same_day"],
            ["NL-AMS-01", "IN", "7", "in_stock", "buy", "same_day"],
            ["NL-AMS-01", "NO-VALUE", "4", "", "buy", "same_day"],
            ["NL-AMS-01", "OUT-EMPTY", "", "out_of_stock", "buy", "same_day"],
        ],
    )
    code, _, err = import_feed(capsys, server, path)
    assert code == 0, err
    got = {sku: (ats, status) for (_, sku), (ats, status, _) in answers(client).items()}
    assert got == {
        "OUT": (0, StockStatus.OUT_OF_STOCK),  # out of stock, whatever the quantity says
        "LIMITED": (2, StockStatus.LIMITED),  # capped at the LIMITED band's top
        "LIMITED-1": (1, StockStatus.LIMITED),
        "IN-ZERO": (0, StockStatus.OUT_OF_STOCK),  # the lesser claim wins
        "DISPLAY": (0, StockStatus.OUT_OF_STOCK),  # on display: nothing to take away
        "IN": (7, StockStatus.IN_STOCK),
        "NO-VALUE": (4, StockStatus.IN_STOCK),  # no availability: the quantity alone
        "OUT-EMPTY": (0, StockStatus.OUT_OF_STOCK),
    }


def test_an_imported_quantity_is_available_to_sell_after_safety_stock_and_holds(
    client: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.upsert_locations([store("NL-AMS-01", default_safety_stock=1)])
    client.apply_stock_updates([update("NL-AMS-01", "SKU-1", 20, NOW - minutes(5), safety_stock=2)])
    client.create_reservation("NL-AMS-01", {"SKU-1": 3})
    path = feed(
        tmp_path,
        [
            ["NL-AMS-01", "SKU-1", "5", "in_stock", "buy", "same_day"],
            ["NL-AMS-01", "NEW", "4", "in_stock", "buy", "same_day"],  # the location's default
        ],
    )
    code, _, err = import_feed(capsys, server, path)
    assert code == 0, err
    assert answers(client) == {
        ("NL-AMS-01", "SKU-1"): (5, StockStatus.IN_STOCK, 5 + 2 + 3),
        ("NL-AMS-01", "NEW"): (4, StockStatus.IN_STOCK, 4 + 1),
    }


def test_a_google_local_file_is_never_a_snapshot(
    client: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = feed(tmp_path, [["NL-AMS-01", "SKU-1", "5", "in_stock", "buy", "same_day"]])
    code, out, err = run(
        capsys, "import", path, "--format", "google-local", "--mode", "snapshot",
        "--target", server.target,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "omnistock import: a google-local file applies as updates at its time,"
        " never as a snapshot: use --mode delta\n"
    )


def test_an_export_re_imported_changes_nothing_and_stale_records_stay_stale(
    client: Client,
    server: InProcessServer,
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_sku = "SKU-" + "X" * 50
    client.upsert_locations(
        [
            store("NL-AMS-01", default_safety_stock=1),
            store("NL-RTM-01", capabilities=Capabilities(pickup=False, ship_to_store=True)),
            store("NL-UTR-01", freshness_budget=Duration(seconds=3600)),
            warehouse("NL-WH-01"),
        ]
    )
    before = NOW - minutes(5)
    client.apply_stock_updates(
        [
            update("NL-AMS-01", "IN", 20, before, safety_stock=2),  # a hold of 3 below: ATS 15
            update("NL-AMS-01", "LIMITED", 3, before),  # 3 - default 1: ATS 2
            update("NL-AMS-01", "NEGATIVE", -4, before),  # ATS 0
            update("NL-AMS-01", "HELD", 4, before, safety_stock=0),  # all held below: ATS 0
            update("NL-AMS-01", long_sku, 9, before),  # too long an id for Google
            update("NL-RTM-01", "IN", 8, before, sequence=7),
            update("NL-UTR-01", "OLD", 6, NOW - timedelta(hours=2)),  # past its 1 h: stale
            update("NL-UTR-01", "IN", 5, before),
            update("NL-WH-01", "IN", 500, before),
        ]
    )
    client.create_reservation("NL-AMS-01", {"IN": 3})
    client.create_reservation("NL-AMS-01", {"HELD": 4})
    first, second = tmp_path / "first.tsv", tmp_path / "second.tsv"
    code, out, err = export_feed(capsys, server, first)
    assert code == 0, err
    assert first.read_text().splitlines() == [
        "\t".join(HEADER),
        "NL-AMS-01\tHELD\t0\tout_of_stock\tbuy\tsame_day",
        "NL-AMS-01\tIN\t15\tin_stock\tbuy\tsame_day",
        "NL-AMS-01\tLIMITED\t2\tlimited_availability\tbuy\tsame_day",
        "NL-AMS-01\tNEGATIVE\t0\tout_of_stock\tbuy\tsame_day",
        "NL-RTM-01\tIN\t8\tin_stock\tnot supported\t",
        "NL-UTR-01\tIN\t5\tin_stock\tbuy\tsame_day",
    ]
    assert out == (
        f"wrote 6 rows for 3 stores to {first} (left out 1 warehouse row, 1 stale row,"
        " 1 row with an id over 50 characters)\n"
    )
    records = answers(client)

    clock.now = NOW + minutes(1)
    code, out, err = import_feed(capsys, server, first, as_of="2026-11-23T12:01:00+00:00")
    assert code == 0, err
    assert out.splitlines() == ["applied 6  stale 0  rejected 0"]
    code, _, err = export_feed(capsys, server, second)
    assert code == 0, err
    assert second.read_text() == first.read_text()
    # Every record's available to sell, band and on_hand is as it was, the stale one included.
    assert answers(client) == records
    [old] = client.get_availability("OLD", ["NL-UTR-01"], exposure=Exposure.EXACT)
    assert old.status == StockStatus.UNKNOWN  # not brought back as a fresh zero
    assert old.as_of.ToDatetime().replace(tzinfo=NOW.tzinfo) == NOW - timedelta(hours=2)
