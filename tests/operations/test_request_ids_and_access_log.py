"""Every call carries a request id, returned in its trailing metadata and written in the
logs; the access log has a line per call, in JSON when asked, with no secret in it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from omnistock.client import Client, NotFoundError, UnauthenticatedError
from omnistock.server.testing import InProcessServer
from omnistock.v1 import location_pb2, location_pb2_grpc
from processes import clean_env, free_port, wait_serving


def trailing(metadata: object) -> dict[str, str]:
    return dict(metadata or ())  # type: ignore[call-overload]


def test_a_request_id_is_taken_or_made_and_returned_on_success_and_error(tmp_path: Path) -> None:
    with (
        InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = location_pb2_grpc.LocationServiceStub(channel)
        _, call = stub.ListLocations.with_call(
            location_pb2.ListLocationsRequest(), metadata=[("x-request-id", "checkout-42")]
        )
        assert trailing(call.trailing_metadata())["x-request-id"] == "checkout-42"
        made = set()
        for _ in range(2):
            _, call = stub.ListLocations.with_call(location_pb2.ListLocationsRequest())
            made.add(trailing(call.trailing_metadata())["x-request-id"])
        assert len(made) == 2 and all(made)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetLocation(
                location_pb2.GetLocationRequest(location_id="NL-NONE-01"),
                metadata=[("x-request-id", "lookup-7")],
            )
        error = raised.value
        assert error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        metadata = trailing(error.trailing_metadata())  # type: ignore[attr-defined]
        assert metadata["x-request-id"] == "lookup-7"
        assert "grpc-status-details-bin" in metadata  # the error details are kept
        # A request id that could forge log fields, or is too long, is replaced.
        for odd in ("a b status=OK", "x" * 129):
            _, call = stub.ListLocations.with_call(
                location_pb2.ListLocationsRequest(), metadata=[("x-request-id", odd)]
            )
            assert trailing(call.trailing_metadata())["x-request-id"] not in ("", odd)


def create_key(database_url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "omnistock.server.cli", "keys", "--database-url", database_url,
         "create", "kiosk Amsterdam", "--role", "read"],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def test_json_access_log_has_a_line_per_call_with_request_id_and_no_secret(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'omnistock.db'}"
    key = create_key(database_url)
    secret = key.split("_", 2)[2]
    target = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "omnistock.server.cli", "serve", "--listen", target,
             "--database-url", database_url, "--grace", "1", "--access-log",
             "--log-format", "json"],
            stdout=log_file, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip
        try:
            wait_serving(target)
            with Client(target, api_key=key, metadata=[("x-request-id", "page-1")]) as client:
                assert list(client.list_locations()) == []
            with (
                Client(target, api_key=key[:-3] + "xyz") as client,
                pytest.raises(UnauthenticatedError),
            ):
                list(client.list_locations())
            with (
                Client(target, api_key=key, metadata=[("x-request-id", "lookup-9")]) as client,
                pytest.raises(NotFoundError),
            ):
                client.get_location("NL-NONE-01")
            # A caller that puts its key where the request id goes gets it masked.
            with Client(target, api_key=key, metadata=[("x-request-id", key)]) as client:
                list(client.list_locations())
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "omnistock.access"]
    assert len(access) == 4
    ok, refused, not_found, masked = access
    assert not_found["status"] == "NOT_FOUND" and not_found["request_id"] == "lookup-9"
    # Other lines made during a call carry its request id too.
    assert any(
        line["logger"] == "omnistock.rpc" and line["request_id"] == "lookup-9" for line in lines
    )
    assert ok["method"] == "/omnistock.v1.LocationService/ListLocations"
    assert ok["principal"] == "kiosk Amsterdam" and ok["status"] == "OK"
    assert ok["request_id"] == "page-1" and ok["latency_ms"] >= 0
    assert refused["status"] == "UNAUTHENTICATED" and refused["principal"] == "-"
    assert refused["request_id"]
    assert "[REDACTED]" in masked["request_id"]
    assert any(line["message"].startswith("omnistock listening") for line in lines)
    for part in (secret, secret[:16], secret[-16:]):
        assert part not in text, f"the secret is in the server log:\n{text}"


def test_access_log_is_off_unless_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}") as server,
        caplog.at_level("INFO", logger="omnistock.access"),
        Client(server.target) as client,
    ):
        list(client.list_locations())
    assert not [r for r in caplog.records if r.name == "omnistock.access"]
