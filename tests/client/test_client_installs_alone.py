"""`pip install ./client` in a fresh virtual environment brings in only the SDK's few dependencies."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "omnistock-client",
    "grpcio",
    "protobuf",
    "googleapis-common-protos",
    "typing-extensions",
    "pip",
    "setuptools",
}


@pytest.mark.slow
def test_client_installs_alone_with_only_its_dependencies(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Build from a copy, so the install leaves nothing behind in the checkout.
    source = tmp_path / "client"
    subprocess.run(["cp", "-r", str(ROOT / "client"), str(source)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.split()}
    assert installed <= ALLOWED, installed - ALLOWED
    probe = subprocess.run(
        [str(python), "-c",
         "import importlib.metadata, omnistock.client as c, omnistock.v1.feed_pb2\n"
         "try:\n import omnistock.server\nexcept ImportError: print('no server')\n"
         "print(c.Client.__name__)\n"
         "print(c.__version__ == importlib.metadata.version('omnistock-client'))"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["no", "server", "Client", "True"]
    assert sys.version_info >= (3, 11)
