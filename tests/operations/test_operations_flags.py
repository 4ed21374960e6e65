"""The operations flags: a wrong value is one clear line and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from processes import clean_env, free_port


def serve(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen",
         f"127.0.0.1:{free_port()}", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", *flags],
        capture_output=True, text=True, timeout=60, env={**clean_env(), **(env or {})},
    )  # fmt: skip
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    ("flags", "env", "said"),
    [
        (("--metrics-listen", "9464"), {}, "--metrics-listen must be HOST:PORT"),
        (("--metrics-listen", "127.0.0.1:99999"), {}, "--metrics-listen must be HOST:PORT"),
        (("--drain-seconds", "-1"), {}, "--drain-seconds must be 0 or more"),
        (("--ready-check-seconds", "0"), {}, "--ready-check-seconds must be a number above 0"),
        ((), {"OMNISTOCK_LOG_FORMAT": "xml"}, "--log-format must be text or json"),
    ],
)
def test_a_wrong_operations_setting_is_one_clear_line(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], said: str
) -> None:
    code, stderr = serve(tmp_path, *flags, env=env)
    assert code == 2
    assert said in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = serve(tmp_path, "--metrics-listen", f"127.0.0.1:{port}")
    assert code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in stderr and "Traceback" not in stderr
