"""Real `omnistock serve` processes for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(target: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise TimeoutError(f"{target} never became SERVING")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}


@contextmanager
def serving(database_url: str, count: int = 1, *extra: str) -> Iterator[list[str]]:
    """``count`` server processes on one database, each on its own port, started one after
    the other (the first brings the schema up to date); stopped at the end."""
    processes: list[subprocess.Popen[bytes]] = []
    targets = []
    try:
        for _ in range(count):
            target = f"127.0.0.1:{free_port()}"
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "omnistock.server.cli",
                        "serve",
                        "--insecure",
                        "--listen",
                        target,
                        "--database-url",
                        database_url,
                        "--grace",
                        "2",
                        *extra,
                    ],
                    env=clean_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_serving(target)
            targets.append(target)
        yield targets
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
