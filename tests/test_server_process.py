"""The `omnistock serve` process: demo start-up, health, reflection, graceful shutdown."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from omnistock.client import ChannelMethod, Client, Exposure, StockStatus
from omnistock.server.testing import InProcessServer
from processes import free_port, wait_serving

SERVICES = {
    "omnistock.v1.LocationService",
    "omnistock.v1.AvailabilityService",
    "omnistock.v1.FeedService",
    "omnistock.v1.ReservationService",
    "omnistock.v1.ChannelService",
    "grpc.health.v1.Health",
}


@pytest.fixture(scope="module")
def demo_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    target = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISTOCK_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen", target,
         "--database-url", f"sqlite:///{db}", "--demo", "--grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        wait_serving(target)
        yield process, target
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_mode_serves_the_demo_data_set(
    demo_process: tuple[subprocess.Popen[str], str],
) -> None:
    _, target = demo_process
    with Client(target) as client:
        stores = [loc for loc in client.list_locations() if loc.kind == 1]
        assert len(stores) == 50
        assert all(loc.time_zone == "Europe/Amsterdam" and loc.country == "NL" for loc in stores)
        answers = client.get_availability("ELEC-10000", exposure=Exposure.EXACT)
        assert len(answers) == 52
        statuses = {StockStatus(a.status) for a in answers}
        assert StockStatus.IN_STOCK in statuses
        stale = next(a for a in answers if a.location_id == "NL-LWD-01")
        assert stale.status == StockStatus.UNKNOWN


def test_the_demo_sells_through_regional_groups_and_four_channels(
    demo_process: tuple[subprocess.Popen[str], str],
) -> None:
    _, target = demo_process
    with Client(target) as client:
        groups = {g.group_id: g for g in client.list_location_groups()}
        regions = [g for name, g in groups.items() if name.startswith("stores-")]
        assert sum(g.resolved_location_count for g in regions) == 50  # each store in one
        assert groups["warehouses"].location_ids == ["NL-WH-TLB", "NL-WH-ZWO"]
        assert set(groups["network"].member_group_ids) == {"warehouses"} | {
            g.group_id for g in regions
        }
        assert groups["network"].resolved_location_count == 52
        channels = {c.channel_id: c for c in client.list_channels()}
        assert set(channels) == {"web", "app", "kiosk", "marketplace"}
        web = channels["web"]
        assert web.sells_incoming and list(web.methods) == [
            ChannelMethod.SHIP,
            ChannelMethod.PICKUP,
        ]
        assert len(web.protections) == 50 and {p.units for p in web.protections} == {2}
        assert list(channels["kiosk"].methods) == [ChannelMethod.PICKUP]
        marketplace = channels["marketplace"]
        assert (marketplace.group_id, list(marketplace.methods)) == (
            "warehouses",
            [ChannelMethod.SHIP],
        )


def test_reflection_lists_the_services(demo_process: tuple[subprocess.Popen[str], str]) -> None:
    _, target = demo_process
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert names >= SERVICES


def test_quickstart_example_prints_availability(
    demo_process: tuple[subprocess.Popen[str], str],
) -> None:
    _, target = demo_process
    example = Path(__file__).resolve().parent.parent / "client" / "examples" / "quickstart.py"
    result = subprocess.run(
        [sys.executable, str(example), "--target", target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "50 stores. Where is ELEC-10000?" in result.stdout
    assert "NL-WH-TLB" in result.stdout and "available to sell" in result.stdout
    assert "Nearest stores to postal code 1012 PH" in result.stdout
    assert "Amsterdam Kalverstraat" in result.stdout and "ready " in result.stdout
    assert "Through the web channel" in result.stdout
    assert re.search(r"^  ship +(IN_STOCK|LIMITED) .* now$", result.stdout, re.M)


def test_sigterm_stops_the_process_cleanly(demo_process: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = demo_process
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "demo mode: loaded 50 stores, 2 warehouses" in output
    assert "shutting down" in output and "omnistock stopped" in output
    assert "Traceback" not in output


def test_a_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "omnistock.server.cli", "serve", "--insecure", "--listen", f"127.0.0.1:{port}",
             "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


def test_in_flight_calls_finish_and_health_goes_not_serving_on_stop(tmp_path: Path) -> None:
    server = InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}").start()
    assert server.server is not None
    # Make one call slow: the location service sleeps inside its database thread.
    service = server.server.locations_service
    original = service.get_location

    def slow_get_location(location_id: str) -> object:
        time.sleep(1.0)
        return original(location_id)

    service.get_location = slow_get_location  # type: ignore[method-assign]
    statuses: list[int] = []
    outcome: dict[str, object] = {}

    def watch_health() -> None:
        with grpc.insecure_channel(server.target) as channel:
            try:
                for reply in health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest()
                ):
                    statuses.append(reply.status)
            except grpc.RpcError:
                pass

    def slow_call() -> None:
        with Client(server.target) as client:
            try:
                client.get_location("NL-NONE-01")
            except Exception as error:
                outcome["error"] = error

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.3)
    server.stop()
    caller.join(10)
    watcher.join(10)
    # The in-flight call ran to its real answer instead of being cut off.
    assert type(outcome["error"]).__name__ == "NotFoundError"
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
