"""Prometheus metrics: a real server's /metrics, scraped after real calls."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from omnistock.client import Client, Exposure, NotFoundError
from omnistock.server.config import ServerConfig
from omnistock.server.observability.metrics import RpcMetrics, new_registry
from omnistock.server.testing import InProcessServer
from processes import free_port
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and wanted <= ls]
    assert found, f"no {name} {labels} among {sorted({n for n, _ in samples})}"
    return sum(found)


@pytest.fixture
def metrics_server(tmp_path: Path) -> Iterator[tuple[InProcessServer, int]]:
    port = free_port()
    config = ServerConfig(
        listen="127.0.0.1:0",
        insecure=True,
        database_url=f"sqlite:///{tmp_path / 'omnistock.db'}",
        demo=True,
        metrics_listen=f"127.0.0.1:{port}",
    )
    with InProcessServer(config) as server:
        yield server, port


def test_call_figures_and_business_gauges_are_scraped_after_real_calls(
    metrics_server: tuple[InProcessServer, int],
) -> None:
    server, port = metrics_server
    with Client(server.target) as client:
        for _ in range(3):
            client.get_availability("ELEC-10000", exposure=Exposure.EXACT)
        with pytest.raises(NotFoundError):
            client.get_location("NL-NONE-01")
        client.create_reservation("NL-AMS-01", {"ELEC-10000": 1})
        with client.watch_availability([("ELEC-10000", "NL-AMS-01")]) as watch:
            next(iter(watch))  # the stream is open: its snapshot came
            samples = scrape(port)
    method = {"grpc_service": "omnistock.v1.AvailabilityService", "grpc_method": "GetAvailability"}
    assert value(samples, "grpc_server_handled_total", grpc_code="OK", **method) == 3
    assert value(samples, "grpc_server_handling_seconds_count", grpc_code="OK", **method) == 3
    assert value(samples, "grpc_server_handling_seconds_bucket", le="+Inf", **method) == 3
    assert value(samples, "grpc_server_handled_total", grpc_method="GetLocation",
                 grpc_code="NOT_FOUND", grpc_type="unary") == 1  # fmt: skip
    # The business gauges.
    assert value(samples, "omnistock_watch_streams_open") == 1
    assert value(samples, "omnistock_active_holds") == 1
    assert value(samples, "omnistock_database_figures_ok") == 1
    # The demo has one store whose feed stopped long ago (NL-LWD-01); its age is there.
    assert value(samples, "omnistock_locations_stale_feeds") >= 1
    assert value(samples, "omnistock_feed_age_seconds", location_id="NL-AMS-01") >= 0
    assert len([n for n, _ in samples if n == "omnistock_feed_age_seconds"]) == 52
    lookups = value(samples, "omnistock_read_cache_hits_total") + value(
        samples, "omnistock_read_cache_misses_total"
    )
    assert lookups > 0
    assert 0 <= value(samples, "omnistock_read_cache_hit_ratio") <= 1
    assert value(samples, "omnistock_db_pool_size") == server.config.db_threads
    assert "grpc.health" not in str(samples)  # probes are not counted


def test_no_metrics_endpoint_unless_asked(tmp_path: Path) -> None:
    with InProcessServer(database_url=f"sqlite:///{tmp_path / 'x.db'}") as server:
        assert server.server is not None
        assert server.server.metrics_endpoint is None
        assert server.server.layer.observer.metrics is None


def test_latency_buckets_follow_prometheus_le_rule() -> None:
    registry = new_registry()
    record = RpcMetrics(registry).recorder("/omnistock.v1.LocationService/GetLocation", "unary")
    for seconds in (0.001, 0.0011, 100.0):  # on a bound, just past it, past every bound
        record(grpc.StatusCode.OK, seconds)
    record(grpc.StatusCode.NOT_FOUND, 0.0002)
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    ok = {"grpc_code": "OK"}
    assert value(samples, "grpc_server_handling_seconds_bucket", le="0.001", **ok) == 1
    assert value(samples, "grpc_server_handling_seconds_bucket", le="0.0025", **ok) == 2
    assert value(samples, "grpc_server_handling_seconds_bucket", le="30.0", **ok) == 2
    assert value(samples, "grpc_server_handling_seconds_bucket", le="+Inf", **ok) == 3
    assert value(samples, "grpc_server_handling_seconds_sum", **ok) == pytest.approx(100.0021)
    assert value(samples, "grpc_server_handled_total", **ok) == 3
    assert value(samples, "grpc_server_handled_total", grpc_code="NOT_FOUND") == 1
