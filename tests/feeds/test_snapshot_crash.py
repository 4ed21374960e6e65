"""Kill the server (SIGKILL) in the middle of a snapshot import: after a restart the
location shows the whole previous snapshot, never a mix. Reads go on during imports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from factories import store
from omnistock.client import Client, Exposure, OmnistockError
from test_server_process import free_port, wait_serving

RECORDS = 2_000


def start(database_url: str, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen", f"127.0.0.1:{port}",
         "--database-url", database_url, "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    wait_serving(f"127.0.0.1:{port}")
    return process


@pytest.mark.slow
def test_sigkill_mid_snapshot_leaves_the_previous_snapshot_whole(database_url: str) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    now = datetime.now(UTC).replace(microsecond=0)
    process = start(database_url, port)
    try:
        with Client(target) as client:
            client.upsert_locations([store("NL-AMS-01"), store("NL-RTM-01")])
            client.import_snapshot(
                "NL-AMS-01", now - timedelta(minutes=10), [(f"S{i:05d}", 1) for i in range(RECORDS)]
            )
            client.import_snapshot("NL-RTM-01", now - timedelta(minutes=10), [("OTHER", 7)])

        halfway = threading.Event()
        outcome: dict[str, object] = {}

        def slow_records() -> Iterator[tuple[str, int]]:
            for i in range(RECORDS * 10):
                if i == RECORDS * 2:
                    halfway.set()
                if i >= RECORDS * 2 and i % 500 == 0:
                    time.sleep(0.05)
                yield (f"S{i:05d}", 2)

        def importer() -> None:
            with Client(target) as client:
                try:
                    client.import_snapshot("NL-AMS-01", now, slow_records(), batch_size=500)
                except OmnistockError as error:
                    outcome["error"] = error

        thread = threading.Thread(target=importer)
        thread.start()
        assert halfway.wait(30)
        time.sleep(0.3)
        # While NL-AMS-01 imports, reads go on, and see the old snapshot.
        with Client(target, timeout=5) as reader:
            [other] = reader.get_availability("OTHER", ["NL-RTM-01"], exposure=Exposure.EXACT)
            [mid] = reader.get_availability("S00001", ["NL-AMS-01"], exposure=Exposure.EXACT)
        assert (other.on_hand, mid.on_hand) == (7, 1)
        process.kill()
        process.wait()
        thread.join(30)
        assert "error" in outcome  # the import did not complete

        process = start(database_url, port)
        with Client(target) as client:
            exported = list(client.export_stock("NL-AMS-01"))
        assert len(exported) == RECORDS
        assert {a.on_hand for a in exported} == {1}
        assert {a.as_of.ToDatetime(UTC) for a in exported} == {now - timedelta(minutes=10)}
    finally:
        process.kill()
        process.wait()
