"""`omnistock export --format csv|jsonl`: every record, lossless, and taken back exactly
by `omnistock import --mode delta` into a fresh database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, FixedClock, _reset_postgres
from factories import store, update, warehouse
from omnistock.client import Client, Location
from omnistock.server.cli import main
from omnistock.server.testing import InProcessServer

LOCATIONS: list[Location] = [store("NL-AMS-01", default_safety_stock=2), warehouse("NL-WH-01")]


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records(client: Client) -> list[tuple[object, ...]]:
    """Every record as the server holds it: counts, safety stock, source time and sequence."""
    return [
        (a.location_id, a.sku, a.on_hand, a.safety_stock, a.as_of.ToJsonString(),
         a.source_sequence if a.HasField("source_sequence") else None)
        for a in client.export_stock()
    ]  # fmt: skip


def fresh(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    _reset_postgres(database_url)
    return database_url


@pytest.mark.parametrize("form", ["csv", "jsonl"])
def test_a_csv_or_jsonl_export_round_trips_exactly_through_import(
    form: str, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FixedClock()
    first, second = tmp_path / f"first.{form}", tmp_path / f"second.{form}"
    with InProcessServer(database_url=database_url, clock=clock) as source:
        with Client(source.target) as client:
            client.upsert_locations(LOCATIONS)
            client.apply_stock_updates(
                [
                    update("NL-AMS-01", "SKU-1", 10, NOW - timedelta(microseconds=123_457)),
                    update("NL-AMS-01", "SKU-2", -3, NOW - timedelta(days=3), sequence=41),
                    update("NL-AMS-01", "SKU-3", 0, NOW, safety_stock=0, sequence=0),
                    update("NL-WH-01", "SKU-1", 500, NOW - timedelta(hours=1), safety_stock=7),
                ]
            )
            client.create_reservation("NL-AMS-01", {"SKU-1": 2})  # holds are not feed data
            before = records(client)
        code, out, err = run(
            capsys, "export", "--format", form, "--target", source.target, "--output", first
        )
        assert code == 0, err
        assert out == f"wrote 4 rows for 2 locations to {first}\n"
    if form == "csv":
        assert first.read_text().splitlines() == [
            "location_id,sku,on_hand,safety_stock,source_updated_at,source_sequence",
            "NL-AMS-01,SKU-1,10,2,2026-11-23T11:59:59.876543+00:00,",
            "NL-AMS-01,SKU-2,-3,2,2026-11-20T12:00:00+00:00,41",
            "NL-AMS-01,SKU-3,0,0,2026-11-23T12:00:00+00:00,0",
            "NL-WH-01,SKU-1,500,7,2026-11-23T11:00:00+00:00,",
        ]

    with InProcessServer(database_url=fresh(database_url, tmp_path), clock=clock) as target:
        with Client(target.target) as client:
            client.upsert_locations(LOCATIONS)
            code, out, err = run(
                capsys, "import", first, "--format", form, "--mode", "delta",
                "--target", target.target,
            )  # fmt: skip
            assert code == 0, err
            assert out == "applied 4  stale 0  rejected 0\n"
            assert records(client) == before
        code, _, err = run(
            capsys, "export", "--format", form, "--target", target.target, "--output", second
        )
        assert code == 0, err
    assert second.read_bytes() == first.read_bytes()
