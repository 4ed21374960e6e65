"""Delta imports on a server that checks keys: every stream that wrote is audited once,
whatever it sent and however it ended, and every line not applied is in the rejects file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import store
from omnistock.client import Client, Exposure
from omnistock.server.cli import main
from omnistock.server.config import ServerConfig
from omnistock.server.domain.ids import ID_RULE
from omnistock.server.domain.security import AuditEntry, Role
from omnistock.server.domain.stock import Exposure as DomainExposure
from omnistock.server.store.keys import KeyRepository
from omnistock.server.testing import InProcessServer

AMS, UTR = "NL-AMS-01", "NL-UTR-01"
NOW = datetime.now(UTC)
AT = (NOW - timedelta(minutes=1)).isoformat()


@pytest.fixture
def secure(database_url: str) -> Iterator[InProcessServer]:
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url)
    with InProcessServer(config) as server:
        with Client(server.target, api_key=key(server, "ops", Role.ADMIN)) as admin:
            admin.upsert_locations([store(AMS), store(UTR)])
        yield server


def key(
    server: InProcessServer,
    name: str,
    *roles: Role,
    locations: list[str] | None = None,
    exposure: DomainExposure = DomainExposure.EXACT,
) -> str:
    assert server.server is not None
    _, text = KeyRepository(server.server.engine).create(
        name, roles, locations=locations, exposure=exposure,
        rate_per_second=1000.0, burst=1000, now=NOW,
    )  # fmt: skip
    return text


def audited(server: InProcessServer, principal: str) -> list[AuditEntry]:
    assert server.server is not None
    server.server.audit.flush()
    return [e for e in server.server.audit.recent(50) if e.principal == principal]


def import_deltas(
    capsys: pytest.CaptureFixture[str], server: InProcessServer, path: Path, api_key: str
) -> tuple[int, str, str]:
    code = main(
        ["import", str(path), "--format", "csv", "--mode", "delta", "--batch-size", "2",
         "--target", server.target, "--api-key", api_key, "--allow-rejects"]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_audit_failures(caplog: pytest.LogCaptureFixture) -> None:
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [r.getMessage() for r in failures]
    assert "TypeError" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        "",  # a header alone
        f"{AMS},bad sku,1,{AT}\n{AMS},SKU-1,1,\n",  # every line rejected before sending
    ],
    ids=["header-only", "all-rejected"],
)
def test_a_delta_import_that_sends_nothing_is_audited_once(
    body: str,
    secure: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "deltas.csv"
    path.write_text("location_id,sku,on_hand,source_updated_at\n" + body)
    code, out, err = import_deltas(capsys, secure, path, key(secure, "pos", Role.FEED))
    assert code == 0, err
    assert out.startswith("applied 0  stale 0")
    [entry] = audited(secure, "pos")
    assert entry.method.endswith("/StreamDeltas")
    assert entry.detail == {"locations": [], "batches": 0, "applied": 0, "stale": 0, "rejected": 0}
    no_audit_failures(caplog)


def test_a_scoped_import_stopped_midway_is_audited_for_what_it_applied_and_keeps_the_rest(
    secure: InProcessServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = [
        f"{AMS},SKU-1,1,{AT}",  # 2, 3: the first batch applies
        f"{AMS},SKU-2,2,{AT}",
        f"{AMS},SKU-3,3,{AT}",  # 4, 5: this batch names a location the key may not feed
        f"{UTR},SKU-1,4,{AT}",
        f"{AMS},SKU-4,5,{AT}",  # 6, 7: after the stop
        f"{AMS},bad sku,6,{AT}",
        f"{AMS},SKU-5,7,{AT}",  # 8
    ]
    path = tmp_path / "deltas.csv"
    path.write_text("location_id,sku,on_hand,source_updated_at\n" + "\n".join(lines) + "\n")
    code, out, err = import_deltas(
        capsys, secure, path, key(secure, "pos-ams", Role.FEED, locations=[AMS])
    )
    assert code == 1
    assert "PERMISSION_DENIED" in err and "Traceback" not in err
    assert out.splitlines() == [f"applied 2  stale 0  rejected 1  skipped 4 (see {path}.rejects)"]
    rejects = [row.split("\t", 2) for row in Path(f"{path}.rejects").read_text().splitlines()[1:]]
    assert [number for number, _, _ in rejects] == ["4", "5", "6", "7", "8"]
    assert rejects[0][1].startswith("not applied: the import stopped: PERMISSION_DENIED")
    assert rejects[3][1] == f"sku 'bad sku' {ID_RULE}"  # its own reason
    for number, reason, original in rejects:
        if number != "7":  # sent after the refused batch, or never: either way not applied
            assert reason.startswith(("not applied: the import", "skipped: the import")), reason
        assert original == lines[int(number) - 2]
    with Client(secure.target, api_key=key(secure, "reader", Role.READ)) as reader:
        answers = reader.get_availability("SKU-1", [AMS, UTR], exposure=Exposure.EXACT)
        assert [a.on_hand for a in answers] == [1, 0]
    [entry] = audited(secure, "pos-ams")
    assert entry.detail == {
        "locations": [AMS],
        "batches": 1,
        "applied": 2,
        "stale": 0,
        "rejected": 0,
        "stopped": "PERMISSION_DENIED",
    }
    no_audit_failures(caplog)


def test_a_google_local_import_with_a_key_that_cannot_read_exact_stock_rejects_its_lines(
    secure: InProcessServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "local.tsv"
    path.write_text(f"store_code\tid\tquantity\tavailability\n{AMS}\tSKU-1\t4\tin_stock\n")
    banded = key(secure, "feed-banded", Role.FEED, exposure=DomainExposure.BANDED)
    code = main(
        ["import", str(path), "--format", "google-local", "--mode", "delta",
         "--target", secure.target, "--api-key", banded, "--allow-rejects"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out == f"applied 0  stale 0  rejected 1 (see {path}.rejects)\n"
    [row] = Path(f"{path}.rejects").read_text().splitlines()[1:]
    number, reason, _ = row.split("\t", 2)
    assert number == "2"
    assert reason.startswith(f"cannot read the current stock of {AMS}: PERMISSION_DENIED")


def test_the_audit_command_prints_the_latest_writes(
    secure: InProcessServer, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert secure.server is not None
    secure.server.audit.flush()  # the fixture's admin upserted two locations
    capsys.readouterr()
    assert main(["audit", "--database-url", database_url, "--limit", "5"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    at, who, method, detail = line.split("  ")
    assert datetime.fromisoformat(at) <= datetime.now(UTC)
    assert who.startswith("ops (") and method.endswith("/UpsertLocations")
    assert AMS in detail and UTR in detail
