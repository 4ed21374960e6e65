"""The deployment files: the Dockerfile passes hadolint, every Kubernetes manifest passes
the API schema (strict), the compose file hangs together, and the image the Dockerfile
describes runs the way the files assume (the `omnistock health` probe, `migrate`,
`serve --no-migrate`). The image is built only where a Docker engine answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from omnistock.server.cli import main
from omnistock.server.testing import InProcessServer

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is a dev extra: run scripts/install"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_a_user_listens_everywhere_and_probes_health() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and " AS build" in stages[0]
    assert "USER 10001:10001" in text
    assert "OMNISTOCK_LISTEN=0.0.0.0:50051" in text
    assert 'CMD ["omnistock", "health"' in text


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_passes_the_kubernetes_schema(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def _manifests() -> dict[str, dict[str, Any]]:
    return {
        document["kind"]: document
        for path in MANIFESTS
        for document in yaml.safe_load_all(path.read_text())
    }


def test_the_manifests_probe_grpc_run_the_migration_job_and_bound_disruption() -> None:
    kinds = _manifests()
    assert {"Deployment", "Job", "PodDisruptionBudget", "Service", "Secret"} <= set(kinds)
    [server] = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert server["args"] == ["serve", "--no-migrate"]
    assert server["livenessProbe"]["grpc"] == {"port": 50051}
    assert server["readinessProbe"]["grpc"]["port"] == 50051
    [job] = kinds["Job"]["spec"]["template"]["spec"]["containers"]
    assert job["args"] == ["migrate", "upgrade"]
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    # Every command the manifests run is one the CLI has.
    for args in (server["args"], job["args"]):
        with pytest.raises(SystemExit) as help_exit:
            main([*args, "--help"])
        assert help_exit.value.code == 0


def test_the_compose_file_hangs_together() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "omnistock"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services, (name, needed)
            assert condition["condition"] in (
                "service_started", "service_healthy", "service_completed_successfully"
            )  # fmt: skip
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], needed
    assert services["migrate"]["command"] == ["migrate", "upgrade"]
    assert services["omnistock"]["command"] == ["serve", "--no-migrate"]
    url = services["omnistock"]["environment"]["OMNISTOCK_DATABASE_URL"]
    assert url == services["migrate"]["environment"]["OMNISTOCK_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    for volume in services["postgres"]["volumes"]:
        assert volume.split(":")[0] in compose["volumes"]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)


def test_docker_compose_config_accepts_the_file_where_the_plugin_exists() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client here")
    if _docker("compose", "version").returncode != 0:
        pytest.skip("the docker client has no compose plugin (the structure test above runs)")
    done = _docker("compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_the_image_builds_where_a_docker_engine_runs() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client here")
    if _docker("info").returncode != 0:
        pytest.skip("no Docker engine answers here (the client alone cannot build)")
    done = _docker("build", "-t", "omnistock:test", str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    done = _docker("run", "--rm", "omnistock:test", "--version")
    assert done.returncode == 0 and done.stdout.startswith("omnistock ")


def test_the_health_probe_exits_0_on_a_serving_server_and_1_otherwise(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the in-process server's default database
    with InProcessServer() as server:
        assert main(["health", "--target", server.target]) == 0
        assert capsys.readouterr().out.strip().endswith("server: SERVING")
        assert main(["health", "--target", server.target, "--service", "no.such"]) == 1
    assert main(["health", "--target", server.target, "--timeout", "0.5"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
