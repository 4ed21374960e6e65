"""With --workers N, worker i serves /metrics on the --metrics-listen port plus i."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from processes import clean_env, free_port, wait_serving


def scrape(port: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return str(answer.read().decode())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_each_worker_serves_its_own_metrics_endpoint(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    metrics_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen", target,
         "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--workers", "2", "--grace", "1",
         "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env(),
    )  # fmt: skip
    try:
        wait_serving(target)
        for port in (metrics_port, metrics_port + 1):
            assert "omnistock_db_pool_size" in scrape(port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
