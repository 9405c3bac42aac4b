"""The per-service compose files: valid for compose v2, and shaped as DESIGN section 7 says."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.tools import DUMMY_SECRETS, PYTHON_SERVICES, ROOT, SERVICES, compose_binary

CONTAINER_NAMES = {"redis": "agent-redis", "postgres": "agent-postgres", "orchestrator": "agent-orchestrator",
                   "gateway": "agent-gateway"}
HOST_PORTS = {"redis": (6380, 6379), "postgres": (5433, 5432), "orchestrator": (8001, 8000), "gateway": (8081, 8080)}
PER_AGENT = {"worker-price": "price", "worker-indicator": "indicator", "worker-bang": "bang"}
REQUIRED = {"redis": {"REDIS_PASSWORD"}, "postgres": {"POSTGRES_PASSWORD"},
            "orchestrator": {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"},
            "worker": {"REDIS_PASSWORD", "POSTGRES_PASSWORD"},
            "gateway": {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"}}


def compose(files: list[Path], *args: str, env: dict[str, str] | None = None,
            tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run compose offline: an empty DOCKER_CONFIG, no inherited compose variables."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("COMPOSE_", "DOCKER_")) and k not in DUMMY_SECRETS
             and k not in {"IMAGE_TAG", "ENVIRONMENT", "PIP_CERT"}}
    clean["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    clean.update(env or {})
    command = [compose_binary()]
    for f in files:
        command += ["-f", str(f)]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=clean, timeout=60)


def config(files: list[Path], tmp_path: Path, *profiles: str) -> dict[str, Any]:
    flags = [a for p in profiles for a in ("--profile", p)]
    result = compose(files, *flags, "config", "--format", "json", env=DUMMY_SECRETS, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def compose_file(service: str) -> Path:
    return ROOT / "services" / service / "docker-compose.yml"


def dev_file(service: str) -> Path:
    return ROOT / "services" / service / "docker-compose.dev.yml"


VARIANTS = [pytest.param([compose_file(s)], (), id=s) for s in SERVICES] + [
    pytest.param([compose_file("worker")], ("per-agent",), id="worker+per-agent")] + [
    pytest.param([compose_file(s), dev_file(s)], (), id=f"{s}+dev") for s in PYTHON_SERVICES]


@pytest.mark.parametrize(("files", "profiles"), VARIANTS)
def test_config_is_valid(files: list[Path], profiles: tuple[str, ...], tmp_path: Path) -> None:
    flags = [a for p in profiles for a in ("--profile", p)]
    result = compose(files, *flags, "config", "-q", env=DUMMY_SECRETS, tmp_path=tmp_path)
    assert result.returncode == 0, f"docker compose config -q failed:\n{result.stderr}"


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is live: a file with an unknown service key fails."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: busybox:1.36\n    restart_policy: always\n")
    result = compose([broken], "config", "-q", tmp_path=tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("service", SERVICES)
def test_required_secrets_stop_compose_with_a_message(service: str, tmp_path: Path) -> None:
    for missing in REQUIRED[service]:
        env = {k: v for k, v in DUMMY_SECRETS.items() if k != missing}
        result = compose([compose_file(service)], "config", "-q", env=env, tmp_path=tmp_path)
        assert result.returncode != 0 and missing in result.stderr, (missing, result.stderr)


@pytest.mark.parametrize("service", SERVICES)
def test_service_shape(service: str, tmp_path: Path) -> None:
    cfg = config([compose_file(service)], tmp_path, "per-agent")
    assert cfg["networks"]["agent-system-net"].get("external") is True
    assert cfg["name"] == f"agent-system-{service}"
    for name, svc in cfg["services"].items():
        assert set(svc.get("networks", {})) == {"agent-system-net"}, name
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: publish on loopback only ({port})"
        if name == "migrate":  # the one-shot schema migration
            assert svc["entrypoint"] == ["agentsys-migrate"] and svc["restart"] == "no"
            continue
        assert svc.get("restart") == "unless-stopped", name
        assert "healthcheck" in svc and not svc["healthcheck"].get("disable"), f"{name}: needs a healthcheck"
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") and limits.get("cpus"), f"{name}: needs cpu and memory limits"
        if service in PYTHON_SERVICES:
            assert svc.get("init") is True and svc.get("read_only") is True and svc.get("cap_drop") == ["ALL"], name
            if service != "gateway":  # the gateway only reads; the others wait for the migrations
                assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
            assert svc["build"]["context"] == str(ROOT)
            assert svc["build"]["dockerfile"] == f"services/{service}/Dockerfile"
            assert image.startswith(f"agent-system/{service}:")
    if service in CONTAINER_NAMES:
        svc = cfg["services"][service]
        assert svc["container_name"] == CONTAINER_NAMES[service]
        published = {(int(p["published"]), int(p["target"])) for p in svc["ports"]}
        assert published == {HOST_PORTS[service]}


def test_redis_has_password_append_only_and_noeviction(tmp_path: Path) -> None:
    svc = config([compose_file("redis")], tmp_path)["services"]["redis"]
    command = svc["command"]
    assert command[command.index("--requirepass") + 1] == DUMMY_SECRETS["REDIS_PASSWORD"]
    conf_mount = next(v for v in svc["volumes"] if v["target"] == "/usr/local/etc/redis/redis.conf")
    conf = Path(conf_mount["source"]).read_text()
    assert "maxmemory-policy noeviction" in conf and "appendonly yes" in conf
    assert conf_mount["source"] == str(ROOT / "services/redis/redis_service/redis.conf")
    assert command[1] == "/usr/local/etc/redis/redis.conf"
    assert any(v["type"] == "volume" and v["target"] == "/data" for v in svc["volumes"])
    assert svc["image"].startswith("redis:7.")


def test_postgres_keeps_its_data_in_a_named_volume(tmp_path: Path) -> None:
    cfg = config([compose_file("postgres")], tmp_path)
    svc = cfg["services"]["postgres"]
    assert svc["image"].startswith("postgres:15.")
    data = next(v for v in svc["volumes"] if v["target"] == "/var/lib/postgresql/data")
    assert data["type"] == "volume" and cfg["volumes"][data["source"]]["name"] == "agent-postgres-data"
    assert svc["environment"]["POSTGRES_PASSWORD"] == DUMMY_SECRETS["POSTGRES_PASSWORD"]


def test_worker_scales_and_scheduler_is_separate(tmp_path: Path) -> None:
    services = config([compose_file("worker")], tmp_path)["services"]
    assert "container_name" not in services["worker"], "a container_name would stop --scale worker=N"
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "agent-worker-health"]
    assert services["scheduler"]["entrypoint"] == ["agent-scheduler"]
    assert services["scheduler"]["container_name"] == "agent-scheduler"
    assert not set(PER_AGENT) & set(services), "per-agent workers belong to the per-agent profile only"
    # Above the longest job, so a stopping worker finishes it (RQ's warm shutdown).
    from agentsys import defaults

    grace = services["worker"]["stop_grace_period"]
    assert _seconds(grace) > defaults.JOB_TIMEOUT


def test_per_agent_profile_adds_one_worker_per_agent_queue(tmp_path: Path) -> None:
    services = config([compose_file("worker")], tmp_path, "per-agent")["services"]
    for name, queue in PER_AGENT.items():
        assert services[name]["environment"]["WORKER_QUEUES"] == queue
        assert services[name]["profiles"] == ["per-agent"]
        assert "container_name" not in services[name]


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_dev_override_mounts_the_source_and_reloads(service: str, tmp_path: Path) -> None:
    services = config([compose_file(service), dev_file(service)], tmp_path)["services"]
    names = ["worker", "scheduler"] if service == "worker" else [service]
    for name in names:
        svc = services[name]
        assert svc["entrypoint"][0] == "watchfiles", name
        assert svc["environment"]["PYTHONPATH"] == "/app/dev"
        mounts = {v["target"]: v["source"] for v in svc["volumes"] if v["type"] == "bind"}
        assert mounts["/app/dev/agentsys"] == str(ROOT / "libs/agentsys/agentsys")
        assert mounts[f"/app/dev/{service}"] == str(ROOT / "services" / service / service)
    if service == "worker":
        assert services["worker"]["build"]["target"] == "dev"


def test_builds_pass_pip_its_ca_bundle_as_a_build_secret_only(tmp_path: Path) -> None:
    for service in PYTHON_SERVICES:
        raw = yaml.safe_load(compose_file(service).read_text())
        assert raw["secrets"]["hostca"]["file"] == "${PIP_CERT:-/dev/null}"
        cfg = config([compose_file(service)], tmp_path)
        for name, svc in cfg["services"].items():
            assert [s["source"] for s in svc["build"].get("secrets", [])] == ["hostca"], name
            assert "secrets" not in svc, f"{name}: the CA bundle is for builds, not for containers"


def _seconds(value: str | int) -> float:
    if isinstance(value, int | float):
        return float(value) / 1e9 if value > 10_000 else float(value)
    total, number = 0.0, ""
    for ch in value:
        if ch.isdigit() or ch == ".":
            number += ch
            continue
        total += float(number) * {"h": 3600, "m": 60, "s": 1}[ch]
        number = ""
    return total
