"""`omnistock import` and `omnistock export`, run in-process against a real server."""

from __future__ import annotations

import io
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, FixedClock
from factories import minutes, store, update, warehouse
from omnistock.client import Capabilities, Client, Exposure
from omnistock.server.cli import main
from omnistock.server.files.progress import Progress
from omnistock.server.testing import InProcessServer

AS_OF = "2026-11-23T12:00:00+00:00"  # NOW


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def on_hand(client: Client, sku: str, location: str) -> int:
    [answer] = client.get_availability(sku, [location], exposure=Exposure.EXACT)
    return answer.on_hand


def rejects_of(path: Path) -> list[list[str]]:
    """The rejects file's rows after its header, split into line, reason and original."""
    lines = Path(f"{path}.rejects").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line\treason\toriginal line"
    return [line.split("\t", 2) for line in lines[1:]]


@pytest.fixture
def stores(client: Client) -> Client:
    client.upsert_locations([store("NL-AMS-01"), store("NL-RTM-01"), warehouse("NL-WH-01")])
    client.apply_stock_updates(
        [
            update("NL-AMS-01", "SKU-1", 10, NOW - minutes(5)),
            update("NL-AMS-01", "SKU-OLD", 7, NOW - minutes(5)),
            update("NL-RTM-01", "SKU-1", 3, NOW - minutes(5)),
            update("NL-RTM-01", "SKU-9", 4, NOW - minutes(5)),
        ]
    )
    return client


def test_a_csv_snapshot_replaces_a_stores_stock(
    stores: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Aliases, columns in any order, an extra column.
    path = write(
        tmp_path,
        "stock.csv",
        "store_code,on_hand,sku,comment\nNL-AMS-01,4,SKU-1,recount\nNL-AMS-01,0,SKU-2,\n",
    )
    code, out, err = run(
        capsys, "import", path, "--format=csv", "--mode=snapshot", "--as-of", AS_OF,
        "--target", server.target,
    )  # fmt: skip
    assert code == 0, err
    assert (on_hand(stores, "SKU-1", "NL-AMS-01"), on_hand(stores, "SKU-2", "NL-AMS-01")) == (4, 0)
    assert on_hand(stores, "SKU-OLD", "NL-AMS-01") == 0  # left out of the snapshot: zeroed
    assert on_hand(stores, "SKU-1", "NL-RTM-01") == 3  # another store is untouched
    assert out.splitlines() == [
        f"NL-AMS-01: snapshot as of {AS_OF}  received 2  applied 2  stale 0  zeroed 1",
        "applied 2  stale 0  rejected 0",
    ]
    assert "stock.csv: 100%" in err  # the progress line, plain as stderr is no terminal
    assert not Path(f"{path}.rejects").exists()


def test_a_delta_csv_applies_adjustments_and_maps_rejects_to_lines(
    stores: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "deltas.csv",
        "location_id,sku,adjustment,on_hand,source_updated_at\n"
        "NL-AMS-01,SKU-1,-1,,2026-11-23T11:56:00Z\n"
        "NL-AMS-01,SKU-1,-2,,2026-11-23T12:57:00+01:00\n"  # 11:57 UTC
        "NL-AMS-01,SKU-2,,6,2026-11-23T11:58:00Z\n"
        "NL-AMS-01,SKU-1,+5,,2026-11-23T11:50:00Z\n"  # older than 11:57: stale
        "NL-XXX-01,SKU-1,-1,,2026-11-23T11:59:00Z\n"  # rejected by the server
        "NL-AMS-01,SKU-1,-1,,\n"  # rejected here: no source time
        "NL-RTM-01,SKU-1,1,,2026-11-23T11:59:00Z\n",
    )
    code, out, err = run(
        capsys, "import", path, "--format", "csv", "--mode", "delta", "--batch-size", 2,
        "--target", server.target, "--allow-rejects",
    )  # fmt: skip
    assert code == 0, err
    assert on_hand(stores, "SKU-1", "NL-AMS-01") == 10 - 1 - 2
    assert on_hand(stores, "SKU-2", "NL-AMS-01") == 6
    assert on_hand(stores, "SKU-1", "NL-RTM-01") == 4
    assert out.splitlines() == [f"applied 4  stale 1  rejected 2 (see {path}.rejects)"]
    assert rejects_of(path) == [
        ["6", "LOCATION_NOT_FOUND: no location 'NL-XXX-01'", "NL-XXX-01,SKU-1,-1,,2026-11-23T11:59:00Z"],
        ["7", "source_updated_at is required (or pass --as-of)", "NL-AMS-01,SKU-1,-1,,"],
    ]  # fmt: skip


def test_delta_rejects_come_out_in_line_order_across_batches(
    stores: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = "2026-11-23T11:59:00Z"
    lines = [
        "location_id,sku,on_hand,source_updated_at",
        "NL-AMS-01,bad sku,1,",  # 2: three bad lines in a row fill a batch of rejects
        "NL-AMS-01,SKU-1,x,",  # 3
        ",SKU-1,1,",  # 4
        f"NL-AMS-01,SKU-1,1,{at}",  # 5
        f'NL-AMS-01,"SKU\n2",1,{at}',  # 6-7: one record over two lines
        f"NL-ZZZ-01,SKU-1,1,{at}",  # 8: rejected by the server
        f"NL-AMS-01,SKU-2,2,{at}",  # 9
        f"NL-ZZZ-01,SKU-1,1,{at}",  # 10
        f"NL-AMS-01,SKU-3,3,{at}",  # 11
        "NL-AMS-01,SKU-4,4,yesterday",  # 12
        "NL-AMS-01,SKU-5,5,",  # 13
    ]
    path = write(tmp_path, "deltas.csv", "\n".join(lines) + "\n")
    code, out, err = run(
        capsys, "import", path, "--format", "csv", "--mode", "delta", "--batch-size", 2,
        "--target", server.target,
    )  # fmt: skip
    assert code == 1, err
    assert "line(s) rejected" in err and "--allow-rejects exits 0" in err
    assert out == f"applied 3  stale 0  rejected 8 (see {path}.rejects)\n"
    rejects = rejects_of(path)
    assert [number for number, _, _ in rejects] == ["2", "3", "4", "6", "8", "10", "12", "13"]
    assert rejects[3][2] == 'NL-AMS-01,"SKU\\n2",1,2026-11-23T11:59:00Z'
    assert rejects[6][1] == "source_updated_at 'yesterday' is not an ISO 8601 time"
    assert (on_hand(stores, "SKU-2", "NL-AMS-01"), on_hand(stores, "SKU-3", "NL-AMS-01")) == (2, 3)


def test_jsonl_lines_with_location_and_as_of_flags(
    stores: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "stock.jsonl",
        '{"sku": "SKU-1", "on_hand": 9, "safety_stock": 2}\n'
        "\n"
        '{"id": "SKU-3", "quantity": "4"}\n'
        '{"sku": "SKU-1", "adjustment": -1, "source_updated_at": "2026-11-23T11:59:00Z"}\n'
        "[1, 2]\n"
        '{"location_id": "NL-RTM-01", "sku": "SKU-2", "on_hand": 1}\n'
        '{"sku": true, "on_hand": 1}\n'
        '{"sku": "SKU-4", "on_hand": 1.5}\n',
    )
    code, out, err = run(
        capsys, "import", path, "--format", "jsonl", "--mode", "delta",
        "--location", "NL-AMS-01", "--as-of", "2026-11-23T11:58:00Z", "--target", server.target, "--allow-rejects",
    )  # fmt: skip
    assert code == 0, err
    [answer] = stores.get_availability("SKU-1", ["NL-AMS-01"], exposure=Exposure.EXACT)
    assert (answer.on_hand, answer.safety_stock, answer.available_to_sell) == (8, 2, 6)
    assert on_hand(stores, "SKU-3", "NL-AMS-01") == 4
    assert out.splitlines() == [f"applied 3  stale 0  rejected 4 (see {path}.rejects)"]
    assert [(number, reason) for number, reason, _ in rejects_of(path)] == [
        ("5", "not a JSON object"),
        ("6", "location_id 'NL-RTM-01' is not the --location 'NL-AMS-01'"),
        ("7", "sku must be a string or a number"),
        ("8", "on_hand '1.5' is not a whole number"),
    ]


@pytest.mark.parametrize("separator", ["\t", ","])
def test_google_local_feeds_tab_or_comma_separated(
    separator: str,
    stores: Client,
    server: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        ["store_code", "id", "quantity", "availability", "price", "pickup_method", "pickup_sla"],
        ["NL-AMS-01", "SKU-1", "5", "in_stock", "9.99 EUR", "buy", "same_day"],
        ["NL-AMS-01", "SKU-2", "", "out_of_stock", "9.99 EUR", "buy", "same_day"],
        ["NL-AMS-01", "SKU-3", "", "in_stock", "9.99 EUR", "buy", "same_day"],
        ["NL-RTM-01", "SKU-1", "2", "limited_availability", "9.99 EUR", "buy", "same_day"],
    ]
    text = "".join(separator.join(row) + "\n" for row in rows)
    path = write(tmp_path, "local.txt", text)
    code, out, err = run(
        capsys, "import", path, "--format", "google-local", "--mode", "delta",
        "--as-of", AS_OF, "--target", server.target,
    )  # fmt: skip
    assert code == 1, err
    assert "line(s) rejected" in err and "--allow-rejects exits 0" in err
    assert on_hand(stores, "SKU-1", "NL-AMS-01") == 5
    assert on_hand(stores, "SKU-2", "NL-AMS-01") == 0  # out_of_stock without a quantity
    assert on_hand(stores, "SKU-1", "NL-RTM-01") == 2
    assert out.splitlines() == [f"applied 3  stale 0  rejected 1 (see {path}.rejects)"]
    assert rejects_of(path) == [["4", "quantity is required", separator.join(rows[3])]]


def test_a_bad_line_means_nothing_of_its_locations_snapshot_is_applied(
    stores: Client,
    server: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write(
        tmp_path,
        "stock.csv",
        "location_id,sku,on_hand\n"
        "NL-AMS-01,SKU-1,4\n"
        "NL-AMS-01,SKU-2,1\n"
        "NL-RTM-01,SKU-1,8\n"  # lines 4 and 5 go out in a first message (batches of 2)
        "NL-RTM-01,SKU-2,8\n"
        "NL-RTM-01,SKU-3,8\n"
        "NL-RTM-01,SKU-4,lots\n"  # line 7: the whole NL-RTM-01 snapshot is abandoned
        "NL-RTM-01,SKU-5,8\n"
        "NL-AMS-01,SKU-3,1\n",  # NL-AMS-01 again, after its snapshot was sent
    )
    code, out, err = run(
        capsys, "import", path, "--format", "csv", "--mode", "snapshot", "--as-of", AS_OF,
        "--batch-size", 2, "--target", server.target,
    )  # fmt: skip
    assert code == 1, err
    assert "line(s) rejected" in err and "--allow-rejects exits 0" in err
    assert "Traceback" not in err
    assert not [r for r in caplog.records if r.name.startswith("grpc")]  # the abort is no news
    assert on_hand(stores, "SKU-1", "NL-AMS-01") == 4
    assert on_hand(stores, "SKU-OLD", "NL-AMS-01") == 0
    # Nothing of NL-RTM-01's snapshot: neither its records nor the zeros it implied.
    assert on_hand(stores, "SKU-1", "NL-RTM-01") == 3
    assert on_hand(stores, "SKU-9", "NL-RTM-01") == 4
    assert on_hand(stores, "SKU-2", "NL-RTM-01") == 0  # never reported there
    assert out.splitlines() == [
        f"NL-AMS-01: snapshot as of {AS_OF}  received 2  applied 2  stale 0  zeroed 1",
        "NL-RTM-01: not applied: line 7 was rejected (1 rejected, 4 lines skipped)",
        f"applied 2  stale 0  rejected 2  skipped 4 (see {path}.rejects)",
    ]
    rejects = rejects_of(path)
    assert [(number, reason) for number, reason, _ in rejects] == [
        ("4", "skipped: snapshot aborted"),
        ("5", "skipped: snapshot aborted"),
        ("6", "skipped: snapshot aborted"),
        ("7", "on_hand 'lots' is not a whole number"),
        ("8", "skipped: snapshot aborted"),
        (
            "9",
            "location NL-AMS-01 appeared earlier in the file and its snapshot was already"
            " sent: a location's lines must be together",
        ),
    ]
    assert rejects[3][2] == "NL-RTM-01,SKU-4,lots"


def test_a_snapshot_the_server_refuses_is_an_error_and_its_lines_are_kept(
    stores: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "stock.csv", "sku,on_hand\nSKU-1,1\nSKU-2,2\n")
    code, out, err = run(
        capsys, "import", path, "--format", "csv", "--mode", "snapshot",
        "--location", "NL-XXX-01", "--target", server.target,
    )  # fmt: skip
    assert code == 1
    assert "omnistock: NL-XXX-01: NOT_FOUND" in err and "Traceback" not in err
    assert out.splitlines()[-1] == f"applied 0  stale 0  rejected 0  skipped 2 (see {path}.rejects)"
    assert [number for number, _, _ in rejects_of(path)] == ["2", "3"]
    assert rejects_of(path)[0][1].startswith("skipped: snapshot refused: NOT_FOUND")


def test_export_writes_googles_local_inventory_for_stores(
    client: Client,
    server: InProcessServer,
    clock: FixedClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.upsert_locations(
        [
            store("NL-AMS-01"),  # pickup, ready in 30 minutes
            store("NL-RTM-01", capabilities=Capabilities(pickup=False, ship_to_store=True)),
            store("NL-UTR-01", pickup_lead_time_minutes=300),
            warehouse("NL-WH-01"),
        ]
    )
    client.apply_stock_updates(
        [
            update("NL-AMS-01", "SKU-1", 10, NOW - minutes(5)),
            update("NL-AMS-01", "SKU-2", 2, NOW - minutes(5)),
            update("NL-RTM-01", "SKU-1", 0, NOW - minutes(5)),
            update("NL-UTR-01", "SKU-1", 10, NOW - minutes(5)),
            update("NL-WH-01", "SKU-1", 500, NOW - minutes(5)),
        ]
    )
    output = tmp_path / "local.tsv"
    target = server.target
    code, out, err = run(
        capsys, "export", "--format", "google-local", "--target", target, "--output", output
    )
    assert code == 0, err
    assert output.read_text().splitlines() == [
        "store_code\tid\tquantity\tavailability\tpickup_method\tpickup_sla",
        "NL-AMS-01\tSKU-1\t10\tin_stock\tbuy\tsame_day",
        "NL-AMS-01\tSKU-2\t2\tlimited_availability\tbuy\tsame_day",
        "NL-RTM-01\tSKU-1\t0\tout_of_stock\tnot supported\t",  # the spec's value, no SLA
        "NL-UTR-01\tSKU-1\t10\tin_stock\tbuy\tnext_day",
    ]
    assert out == f"wrote 4 rows for 3 stores to {output} (left out 1 warehouse row)\n"

    # Past the freshness budget stock reads UNKNOWN: left out (and counted), neither
    # offered nor passed off as a fresh zero.
    clock.now = NOW + timedelta(hours=25)
    args = ("export", "--format", "google-local", "--target", target, "--output", output)
    code, out, err = run(capsys, *args, "--location", "NL-AMS-01")
    assert code == 0, err
    assert output.read_text().splitlines()[1:] == []
    assert out == f"wrote 0 rows for 0 stores to {output} (left out 2 stale rows)\n"
    code, out, err = run(capsys, *args, "--location", "NL-WH-01")
    assert code == 1
    assert (
        err == "omnistock export: NL-WH-01 is a warehouse: the local inventory feed lists stores\n"
    )


def test_usage_and_server_errors_exit_cleanly(
    server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.csv"
    base = ("--format", "csv", "--mode", "delta", "--target", server.target)
    code, out, err = run(capsys, "import", missing, *base)
    assert (code, out) == (2, "")
    assert err == f"omnistock import: {missing}: no such file\n"

    headless = write(tmp_path, "bad.csv", "foo,bar\n1,2\n")
    code, _, err = run(capsys, "import", headless, *base)
    assert code == 2
    assert err == f"omnistock import: {headless}: no sku or id column (the header has: foo, bar)\n"

    with pytest.raises(SystemExit) as usage:
        main(["import", str(headless), *base, "--as-of", "2026-11-23T12:00"])  # no offset
    assert usage.value.code == 2
    assert "needs a UTC offset" in capsys.readouterr().err

    good = write(tmp_path, "good.csv", "location_id,sku,on_hand\nNL-AMS-01,SKU-1,1\n")
    code, _, err = run(capsys, "import", good, *base[:-1], "127.0.0.1:1", "--as-of", AS_OF)
    assert code == 1
    assert "\nomnistock: UNAVAILABLE: failed to connect" in err and "Traceback" not in err


def test_a_large_snapshot_streams_in_constant_memory(
    client: Client, server: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.upsert_locations([store("NL-AMS-01")])
    path = tmp_path / "big.csv"
    with path.open("w") as file:
        file.write("sku,on_hand,safety_stock\n")
        file.writelines(f"SKU-{n:06},{n % 40},1\n" for n in range(50_000))
    tracemalloc.start()
    try:
        code, out, err = run(
            capsys, "import", path, "--format", "csv", "--mode", "snapshot",
            "--location", "NL-AMS-01", "--as-of", AS_OF, "--target", server.target,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    assert "received 50,000  applied 50,000" in out
    # About 2 MB, mostly one 5,000-record message (and the in-process server's
    # share); holding the file's records would take some 18 MB.
    assert peak < 5_000_000, f"peak {peak:,} bytes"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_redraws_at_most_ten_times_a_second() -> None:
    now = [0.0]
    terminal = FakeTerminal()
    progress = Progress(1_000_000, terminal, label="big.csv", clock=lambda: now[0])
    for step in range(1, 1001):  # a thousand updates over two seconds
        now[0] = step * 0.002
        progress.update(step * 1000)
    progress.finish()
    frames = terminal.getvalue().split("\r")[1:]
    assert 15 <= len(frames) <= 21
    assert frames[0].startswith("big.csv [#-------------------]   5%  50.0 KB of 1.0 MB")
    assert any("[##########----------]" in frame for frame in frames)
    assert "KB/s  ETA 0:01" in frames[9]
    assert frames[-1].startswith("big.csv: 100% 1.0 MB of 1.0 MB in 0:02")
    assert terminal.getvalue().endswith("\n")
