"""The keys docs/security.md tells an operator to make do their jobs: each recipe is run
exactly as written (`omnistock keys create ...`), then used by the command or call it is
for. And `omnistock keys --help` prints the roles of the one scope table."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import store, update
from keyring import keyring
from omnistock.client import Exposure, StockStatus, WatchEventKind
from omnistock.server.cli import main
from omnistock.server.domain.security import Role
from omnistock.server.transport.scope import METHOD_SCOPES

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
AMS = "NL-AMS-01"


def documented_recipes() -> dict[str, list[str]]:
    """'feed', 'export', 'kiosk': the `keys create` arguments the doc gives for each."""
    recipes = {}
    for line in SECURITY_DOC.read_text().splitlines():
        found = re.fullmatch(r"omnistock (keys create .*?)\s+# the (\w+) key", line)
        if found:
            recipes[found.group(2)] = shlex.split(found.group(1))
    return recipes


def create_key(capsys: pytest.CaptureFixture[str], recipe: list[str], database_url: str) -> str:
    assert main([*recipe, "--database-url", database_url]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_the_doc_gives_a_feed_an_export_and_a_kiosk_key() -> None:
    assert set(documented_recipes()) >= {"feed", "export", "kiosk"}


def test_each_documented_key_does_its_job(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    recipes = documented_recipes()
    with keyring(database_url) as ring:
        admin = ring.key("setup", Role.ADMIN, exposure=Exposure.EXACT)
        with ring.client(admin) as client:
            client.upsert_locations([store(AMS)])
            client.apply_stock_updates([update(AMS, "SKU-1", 9, now)])
        target = ring.server.target

        feed = create_key(capsys, recipes["feed"], database_url)
        deltas = tmp_path / "deltas.csv"
        deltas.write_text(
            f"location_id,sku,on_hand,source_updated_at\n{AMS},SKU-1,8,{now:%Y-%m-%dT%H:%M:%S}Z\n"
        )
        code = main(["import", str(deltas), "--format", "csv", "--mode", "delta",
                     "--target", target, "--api-key", feed])  # fmt: skip
        assert code == 0, capsys.readouterr().err

        export = create_key(capsys, recipes["export"], database_url)
        for form in ("google-local", "csv"):
            output = tmp_path / f"export.{form}"
            code = main(["export", "--format", form, "--output", str(output),
                         "--target", target, "--api-key", export])  # fmt: skip
            assert code == 0, capsys.readouterr().err
            assert "SKU-1" in output.read_text()

        kiosk = create_key(capsys, recipes["kiosk"], database_url)
        with ring.client(kiosk) as client:
            [answer] = client.get_availability("SKU-1", [AMS])
            assert StockStatus(answer.status) is StockStatus.IN_STOCK
            with client.watch_availability([("SKU-1", AMS)]) as watch:
                first = next(iter(watch))
                assert WatchEventKind(first.kind) is WatchEventKind.SNAPSHOT


def test_keys_help_prints_every_method_under_the_role_the_table_gives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "--help"])
    shown = capsys.readouterr().out.split("roles and the methods each needs", 1)[1]
    current = None
    listed: dict[str, str] = {}
    for line in shown.splitlines():
        if re.fullmatch(r"  \w+:", line):
            current = line.strip(" :")
        elif line.startswith("    ") and current:
            listed["/omnistock.v1." + line.strip()] = current
    assert listed == {method: scope.role.value for method, scope in METHOD_SCOPES.items()}
