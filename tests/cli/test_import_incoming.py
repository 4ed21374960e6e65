"""`omnistock import-incoming`, run in-process against a real server: csv and jsonl files
become ApplyIncomingUpdates batches; bad lines, checked here or refused by the server, go
to the rejects file; a bad header or a missing file is one clear line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import store, warehouse
from omnistock.client import Client
from omnistock.server.cli import main
from omnistock.server.testing import InProcessServer

HEADER = "location_id,sku,line_id,quantity,expected_date,source_updated_at,source_sequence\n"
AT = "2026-11-23T11:00:00+00:00"


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rejects_of(path: Path) -> list[list[str]]:
    lines = Path(f"{path}.rejects").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line\treason\toriginal line"
    return [line.split("\t", 2) for line in lines[1:]]


def open_lines(client: Client, location_id: str) -> list[tuple[str, str, int, str]]:
    return [
        (s.sku, s.line_id, s.quantity, s.expected_date)
        for s in client.list_incoming_supply(location_id=location_id)
    ]


@pytest.fixture
def places(client: Client) -> Client:
    client.upsert_locations([warehouse("NL-WH-01"), store("NL-AMS-01")])
    return client


def test_a_csv_of_purchase_orders_is_applied_in_batches(
    places: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "po.csv"
    path.write_text(
        HEADER
        + "".join(f"NL-WH-01,PHONE,PO-{i},{10 + i},2026-12-0{1 + i},{AT},\n" for i in range(5))
        + f"NL-AMS-01,PHONE,TR-1,2,2026-11-25,{AT},7\n"
    )
    code, out, err = run(
        capsys, "import-incoming", path, "--target", server.target, "--batch-size", 2
    )
    assert code == 0, err
    assert out.splitlines() == ["applied 6  stale 0  rejected 0"]
    assert open_lines(places, "NL-WH-01") == [
        ("PHONE", f"PO-{i}", 10 + i, f"2026-12-0{1 + i}") for i in range(5)
    ]
    assert open_lines(places, "NL-AMS-01") == [("PHONE", "TR-1", 2, "2026-11-25")]
    # The same file again changes nothing: every line is stale.
    code, out, _ = run(capsys, "import-incoming", path, "--target", server.target)
    assert (code, out.splitlines()) == (0, ["applied 0  stale 6  rejected 0"])


def test_bad_lines_go_to_the_rejects_file_and_the_rest_applies(
    places: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "transfers.jsonl"
    good = {
        "location_id": "NL-AMS-01",
        "sku": "PHONE",
        "line_id": "TR-1",
        "quantity": 3,
        "expected_date": "2026-11-25",
        "source_updated_at": AT,
    }
    lines = [
        good,
        {**good, "line_id": "TR-2", "expected_date": "2026-11-31"},
        {**good, "line_id": "TR-3", "quantity": -1},
        {**good, "line_id": "TR-4", "location_id": "NL-NOPE-01"},
        {**good, "line_id": "TR-5", "source_updated_at": None},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    code, out, err = run(capsys, "import-incoming", path, "--target", server.target)
    assert code == 1
    assert out.splitlines() == [f"applied 1  stale 0  rejected 5 (see {path}.rejects)"]
    assert "5 line(s) rejected" in err
    assert [(number, reason.split(" ")[0]) for number, reason, _ in rejects_of(path)] == [
        ("2", "expected_date"),
        ("3", "quantity"),
        ("5", "source_updated_at"),
        ("6", "not"),
        ("4", "LOCATION_NOT_FOUND:"),  # refused by the server, after the file was read
    ]
    assert open_lines(places, "NL-AMS-01") == [("PHONE", "TR-1", 3, "2026-11-25")]


def test_a_header_without_the_needed_columns_is_one_clear_error(
    server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "po.csv"
    path.write_text("location_id,sku,quantity\nNL-WH-01,PHONE,4\n")
    code, out, err = run(capsys, "import-incoming", path, "--target", server.target)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"omnistock import-incoming: {path}: no line_id, expected_date, source_updated_at"
        " columns (the header has: location_id, sku, quantity)"
    ]
    code, _, err = run(capsys, "import-incoming", tmp_path / "none.csv", "--target", server.target)
    assert code == 2
    assert err.splitlines() == [f"omnistock import-incoming: {tmp_path / 'none.csv'}: no such file"]


def test_an_unreachable_server_stops_the_import_with_the_lines_not_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "po.csv"
    path.write_text(HEADER + f"NL-WH-01,PHONE,PO-1,5,2026-12-01,{AT},\n")
    code, out, err = run(
        capsys, "import-incoming", path, "--target", "127.0.0.1:1", "--allow-rejects"
    )
    assert code == 1
    assert "is an omnistock server running at 127.0.0.1:1?" in err
    assert out.splitlines() == [f"applied 0  stale 0  rejected 0  skipped 1 (see {path}.rejects)"]
    [[number, reason, _]] = rejects_of(path)
    assert number == "2" and reason.startswith("unconfirmed: the import stopped")
