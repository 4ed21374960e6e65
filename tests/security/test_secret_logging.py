"""No secret in any log line: a real `omnistock serve` process is sent its own key in
every wrong way (bytes that are not UTF-8, wrong secrets, odd spellings), and its whole
log is searched for the secret."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omnistock.client import Client, UnauthenticatedError
from omnistock.server.redaction import SecretFilter, redact
from processes import clean_env, free_port, wait_serving
from raw_http2 import call

GET_LOCATION = "/omnistock.v1.LocationService/GetLocation"


def create_key(database_url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "omnistock.server.cli", "keys", "--database-url", database_url,
         "create", "ops", "--role", "admin"],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def test_no_key_reaches_the_log_of_a_real_server(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'omnistock.db'}"
    key = create_key(database_url)
    key_id, secret = key.split("_")[1], key.split("_", 2)[2]
    target = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "omnistock.server.cli", "serve", "--listen", target,
             "--database-url", database_url, "--grace", "1", "--log-level", "DEBUG"],
            stdout=log_file, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip
        try:
            wait_serving(target)
            with Client(target, api_key=key + " ") as client:
                list(client.list_locations())
            for wrong in (f"osk_{key_id}_{secret[:-2]}xx", f"Bearer {secret}", secret):
                with (
                    Client(target, api_key=wrong) as client,
                    pytest.raises(UnauthenticatedError),
                ):
                    list(client.list_locations())
            raw = key.encode()
            for undecodable in (
                raw + b"\xff",
                b"Bearer " + raw + b"\xe9",
                raw[:12] + b"\xc3\x28" + raw[12:],  # a broken character inside the secret
                b"\x80" + secret.encode(),
            ):
                answer = call(target, GET_LOCATION, [(b"authorization", undecodable)])
                assert b"grpc-status" in answer
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    log = log_path.read_text()
    assert "omnistock listening" in log and "omnistock stopped" in log
    # gRPC's record of the undecodable values is there, without them.
    assert "a call sent a metadata value that is not UTF-8 (value withheld)" in log
    assert "Traceback" not in log
    for part in (secret, secret[:16], secret[-16:]):
        assert part not in log, f"the secret is in the server log:\n{log}"


def test_the_filter_masks_keys_in_messages_arguments_and_tracebacks() -> None:
    key = "osk_3e018631534e_Zk1nR8vXc2Lq0pWm7aTy5uHs"
    try:
        raise ValueError(f"bad metadata (('authorization', 'Bearer {key}'),)")
    except ValueError:
        record = logging.getLogger("omnistock.test").makeRecord(
            "omnistock.test", logging.ERROR, __file__, 1, "refused %s", (key,),
            sys.exc_info(),
        )  # fmt: skip
    assert SecretFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "Zk1nR8vXc2Lq0pWm7aTy5uHs" not in text
    assert "refused osk_3e018631534e_[REDACTED]" in text and "ValueError" in text
    assert redact(text) == text  # masking twice changes nothing
