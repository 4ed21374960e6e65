"""TLS and mutual TLS, with certificates made by the tests (openssl)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from omnistock.client import Client, UnavailableError
from omnistock.server.config import ServerConfig
from omnistock.server.testing import InProcessServer

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make test certificates"
)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=omnistock test CA", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)  # fmt: skip
    return d


def tls_server(pki: Path, tmp_path: Path, *, mutual: bool) -> InProcessServer:
    config = ServerConfig(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'tls.db'}",
        insecure=True,  # keys are tested elsewhere; this is about the channel
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
    )
    if mutual:
        config = replace(config, tls_client_ca=str(pki / "ca.pem"))
    return InProcessServer(config)


@pytest.fixture
def tls(pki: Path, tmp_path: Path) -> Iterator[InProcessServer]:
    with tls_server(pki, tmp_path, mutual=False) as server:
        yield server


@pytest.fixture
def mtls(pki: Path, tmp_path: Path) -> Iterator[InProcessServer]:
    with tls_server(pki, tmp_path, mutual=True) as server:
        yield server


def test_tls_serves_clients_that_trust_its_ca(tls: InProcessServer, pki: Path) -> None:
    ca = (pki / "ca.pem").read_bytes()
    with Client(tls.target, root_certificates=ca, timeout=5) as client:
        assert list(client.list_locations()) == []
    with Client(tls.target, timeout=2) as plaintext, pytest.raises(UnavailableError):
        list(plaintext.list_locations())


def test_mutual_tls_needs_a_client_certificate(mtls: InProcessServer, pki: Path) -> None:
    ca = (pki / "ca.pem").read_bytes()
    identity = ((pki / "client.pem").read_bytes(), (pki / "client.key").read_bytes())
    with Client(mtls.target, root_certificates=ca, client_certificate=identity, timeout=5) as ok:
        assert list(ok.list_locations()) == []
    with (
        Client(mtls.target, root_certificates=ca, timeout=2) as anonymous,
        pytest.raises(UnavailableError),
    ):
        list(anonymous.list_locations())
