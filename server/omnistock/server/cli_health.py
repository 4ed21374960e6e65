"""`omnistock health`: the gRPC health probe, for a container's HEALTHCHECK or a script
(grpc_health_probe is not on PyPI; grpcio-health-checking gives the same in a few lines).
Exit status 0 when the service is SERVING, 1 otherwise, 2 on a usage error."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from omnistock.server.config import DEFAULT_LISTEN, parse_listen


def _local_target(listen: str) -> str:
    """Where to reach a server listening on ``listen`` from the same host or container."""
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        target = parse_listen(args.target or os.environ.get("OMNISTOCK_LISTEN", DEFAULT_LISTEN),
                              "--target")  # fmt: skip
    except ValueError as error:
        print(f"omnistock: {error}", file=sys.stderr)
        return 2
    target = _local_target(target)
    if args.tls_ca:
        try:
            roots = Path(args.tls_ca).read_bytes()
        except OSError as error:
            print(f"omnistock: --tls-ca {args.tls_ca!r}: {error.strerror}", file=sys.stderr)
            return 2
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        # The typed stubs leave Check off HealthStub's generic form.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as error:
            code = error.code()
            print(f"omnistock: {target} {args.service!r}: {code.name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{target} {args.service or 'server'}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


def add_health_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = commands.add_parser(
        "health",
        help="ask a server's gRPC health service (a probe for containers and scripts)",
        description="Ask a server's grpc.health.v1 service. Exit status 0 when SERVING, 1 when"
        " not (NOT_SERVING, unreachable, unknown service), 2 on a usage error.",
    )
    health.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="the server; 0.0.0.0 means this host [$OMNISTOCK_LISTEN, 127.0.0.1:50051]",
    )
    health.add_argument(
        "--service",
        default="",
        help="the health service name: empty for the server as a whole (liveness) [empty]",
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait [3]")
    health.add_argument(
        "--tls-ca", metavar="PEM", help="check a TLS server whose certificate this CA signed"
    )
    health.set_defaults(run=_health)
