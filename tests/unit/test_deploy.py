"""deploy/: the Dockerfile and docker-compose.yml agree with each other and with scv.

Docker is not available where the tests run, so these are static checks: they catch the
drift that would only show at ``docker compose up`` (a renamed command, a wrong port, a
worker pointed at the wrong broker).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from scv.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, with continuation lines joined and comments gone."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def argv(form: str) -> list[str]:
    """A Dockerfile ENTRYPOINT/CMD argument (JSON exec form or shell form) as a list."""
    form = form.strip()
    if form.startswith("["):
        value = json.loads(form)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return ["/bin/sh", "-c", form]


def last(instruction: str) -> str | None:
    found = [args for keyword, args in dockerfile_instructions() if keyword == instruction]
    return found[-1] if found else None


def image_argv() -> tuple[list[str], list[str]]:
    entrypoint, cmd = last("ENTRYPOINT"), last("CMD")
    return (argv(entrypoint) if entrypoint else [], argv(cmd) if cmd else [])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def env(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("environment") or {}
    if isinstance(value, list):  # ["KEY=value", ...]
        value = dict(item.split("=", 1) for item in value)
    return {str(k): str(v) for k, v in value.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    """The argv a compose service runs with the image built from deploy/Dockerfile."""
    entrypoint, cmd = image_argv()
    if "entrypoint" in service:
        value = service["entrypoint"]
        entrypoint = shlex.split(value) if isinstance(value, str) else list(value)
        cmd = []  # compose drops the image's CMD when it overrides the entrypoint
    if "command" in service:
        value = service["command"]
        cmd = shlex.split(value) if isinstance(value, str) else list(value)
    return entrypoint + cmd


def uses_scv_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    context = (COMPOSE.parent / str(build.get("context", "."))).resolve()
    dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
    return context == REPO and dockerfile == DOCKERFILE


# ------------------------------------------------------------------------------ Dockerfile
def test_dockerfile_runs_scv_worker_by_default() -> None:
    entrypoint, cmd = image_argv()
    assert entrypoint + cmd == ["scv", "worker"]


def test_dockerfile_exposes_the_default_web_port() -> None:
    default_port = Settings.model_fields["web_port"].default
    exposed = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "EXPOSE")
    assert str(default_port) in re.split(r"[\s/]+", exposed)


def test_dockerfile_base_user_volume_and_healthcheck() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    user = last("USER")
    assert user is not None and user.split(":")[0] not in ("root", "0")
    volume = last("VOLUME") or ""
    assert "/var/lib/scv" in volume
    healthcheck = last("HEALTHCHECK") or ""
    assert "/livez" in healthcheck
    env_line = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "SCV_DATA_DIR=/var/lib/scv" in env_line  # state lands on the volume
    assert "SCV_WEB_HOST=0.0.0.0" in env_line  # reachable from outside the container


def test_dockerfile_copies_paths_that_exist() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


# ------------------------------------------------------------------------------ compose
def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = services(compose)["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    kafka_env = env(kafka)
    roles = {r.strip() for r in kafka_env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka_env
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any(key.startswith("KAFKA_ZOOKEEPER") for key in kafka_env)


def test_topics_service_creates_topics_once(compose: dict[str, Any]) -> None:
    topics = services(compose)["topics"]
    assert uses_scv_image(topics)
    assert command_of(topics) == ["scv", "topics", "create"]
    assert env(topics)["SCV_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics.get("restart", "no") == "no"


def test_two_workers_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    found = {
        name: svc
        for name, svc in services(compose).items()
        if uses_scv_image(svc) and command_of(svc) == ["scv", "worker"]
    }
    assert len(found) == 2, sorted(found)
    images = {svc.get("image") for svc in found.values()}
    assert len(images) == 1  # one image, built once from deploy/Dockerfile
    volumes, host_ports = [], []
    web_port = Settings.model_fields["web_port"].default
    for name, svc in found.items():
        worker_env = env(svc)
        host, _, port = worker_env["SCV_BOOTSTRAP_SERVERS"].partition(":")
        assert host in services(compose), f"{name} points at {host}, not a compose service"
        assert host == "kafka" and port == "9092"
        assert float(worker_env["SCV_SESSION_TIMEOUT_S"]) >= 6  # real Kafka's minimum
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        # the profile API forwards to a worker at the URL it announces: its own service
        assert worker_env["SCV_WEB_URL"] == f"http://{name}:{web_port}"
        mounts = [str(v) for v in svc["volumes"] if str(v).endswith(":/var/lib/scv")]
        assert len(mounts) == 1, f"{name} needs its own state volume on /var/lib/scv"
        volumes.append(mounts[0].split(":")[0])
        ports = [str(p) for p in svc["ports"]]
        assert all(p.endswith(f":{web_port}") for p in ports)
        host_ports += [p.rsplit(":", 1)[0] for p in ports]
    assert len(set(volumes)) == len(volumes), "workers must not share a RocksDB state volume"
    assert len(set(host_ports)) == len(host_ports), "workers need distinct host web ports"
    assert set(volumes) <= set(compose.get("volumes") or {})


# ------------------------------------------------------------------------------ monitoring
GRAFANA = DEPLOY / "grafana"


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a compose service: container path -> host path (named volumes left out)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            found[target] = (COMPOSE.parent / source).resolve()
    return found


def test_prometheus_scrapes_every_worker(compose: dict[str, Any]) -> None:
    prometheus = services(compose)["prometheus"]
    assert str(prometheus["image"]).startswith("prom/prometheus:")
    config_path = mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    assert config_path == DEPLOY / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(config_path.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "scv"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    web_port = Settings.model_fields["web_port"].default
    workers = {
        name
        for name, svc in services(compose).items()
        if uses_scv_image(svc) and command_of(svc) == ["scv", "worker"]
    }
    assert targets == {f"{name}:{web_port}" for name in workers}


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana:")
    bound = mounts(grafana)
    assert bound["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    dashboards_dir = bound["/var/lib/grafana/dashboards"]
    [source] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    port = services(compose)["prometheus"]["ports"][0].split(":")[-1]
    assert source["url"] == f"http://prometheus:{port}"
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/scv.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    boards = sorted(dashboards_dir.glob("*.json"))
    assert [b.name for b in boards] == ["scv.json"]
    board = json.loads(boards[0].read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)


def test_prometheus_loads_the_alert_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    bound = mounts(services(compose)["prometheus"])
    for rule_file in config["rule_files"]:
        assert bound[rule_file] == DEPLOY / "prometheus-rules.yml"
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert alerts and all({"alert", "expr", "annotations"} <= set(r) for r in alerts)
