"""docker-compose.yml and the Dockerfile: validated by docker-compose, plus structure checks."""

from __future__ import annotations

import re
from typing import Any

from . import REPO_ROOT, describe, load_yaml, require_tool, run_tool

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
KAFKA_IMAGE = "apache/kafka:3.9.1"
SERVICES = {"kafka", "kafka-init", "worker", "simulator", "prometheus", "alertmanager", "grafana"}
KRAFT_ENV = {
    "KAFKA_NODE_ID",
    "KAFKA_PROCESS_ROLES",
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
}


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def env(svc: dict[str, Any]) -> dict[str, str]:
    environment = svc.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def command_text(svc: dict[str, Any]) -> str:
    command = svc.get("command", "")
    return command if isinstance(command, str) else " ".join(map(str, command))


def test_docker_compose_config_is_valid() -> None:
    docker_compose = require_tool("docker-compose")
    result = run_tool([docker_compose, "-f", COMPOSE_FILE.name, "config", "-q"])
    assert result.returncode == 0, describe(result)


def test_docker_compose_sees_services_and_volumes() -> None:
    docker_compose = require_tool("docker-compose")
    services = run_tool([docker_compose, "-f", COMPOSE_FILE.name, "config", "--services"])
    assert services.returncode == 0, describe(services)
    assert set(services.stdout.split()) == SERVICES
    volumes = run_tool([docker_compose, "-f", COMPOSE_FILE.name, "config", "--volumes"])
    assert volumes.returncode == 0, describe(volumes)
    assert {"kafka-data", "prometheus-data", "alertmanager-data", "grafana-data"} <= set(
        volumes.stdout.split()
    )


def test_compose_spec_without_version_key() -> None:
    data = compose()
    assert "version" not in data, "the top-level `version` key is obsolete in the compose spec"
    assert set(data["services"]) == SERVICES


def test_kafka_is_a_healthy_single_node_kraft_broker() -> None:
    kafka = service("kafka")
    assert kafka["image"] == KAFKA_IMAGE
    variables = env(kafka)
    assert set(variables) >= KRAFT_ENV, f"missing: {sorted(KRAFT_ENV - set(variables))}"
    assert set(variables["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "kafka:9092" in variables["KAFKA_ADVERTISED_LISTENERS"]
    replication = {k: v for k, v in variables.items() if "REPLICATION_FACTOR" in k}
    assert replication, "no replication factor settings"
    assert set(replication.values()) == {"1"}, replication
    assert "kafka-broker-api-versions.sh" in str(kafka["healthcheck"]["test"])
    assert any(str(v).split(":")[0] in compose()["volumes"] for v in kafka["volumes"])


def test_kafka_init_creates_topics() -> None:
    init = service("kafka-init")
    assert init["image"] == KAFKA_IMAGE
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = command_text(init)
    assert "kafka-topics.sh" in script
    assert re.search(r"--topic agent-telemetry --partitions 6\b", script), script
    for topic in ("driftwatch.drift-events", "driftwatch.dead-letter"):
        assert f"--topic {topic} " in script, topic


def test_worker_service() -> None:
    worker = service("worker")
    assert worker["build"] in (".", {"context": "."})
    assert env(worker) == {
        "DRIFTWATCH_BOOTSTRAP_SERVERS": "kafka:9092",
        "DRIFTWATCH_METRICS_PORT": "9464",
        "DRIFTWATCH_REFERENCE_MODE": "warmup",
    }
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    probe = str(worker["healthcheck"]["test"])
    assert "/metrics" in probe, probe
    assert "9464" in probe or "DRIFTWATCH_METRICS_PORT" in probe, probe


def test_simulator_service() -> None:
    simulator = service("simulator")
    assert simulator.get("image") == service("worker").get("image") or "build" in simulator
    assert command_text(simulator) == (
        "driftwatch simulate --bootstrap-servers kafka:9092 --rate 200 --agents 5 "
        "--drift-agent agent-1 --drift-feature response_latency_ms --drift-kind shift "
        "--drift-at 120"
    )
    assert simulator["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name in ("kafka", "worker", "prometheus", "alertmanager", "grafana"):
        check = service(name).get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_prometheus_and_grafana_mounts_match_their_configs() -> None:
    prometheus = service("prometheus")
    assert prometheus["image"].startswith("prom/prometheus")
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert any(str(p).startswith("9090:") or str(p) == "9090" for p in prometheus["ports"])
    scrape = load_yaml(REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml")
    targets = [
        target
        for job in scrape["scrape_configs"]
        if job["job_name"] == "driftwatch"
        for sc in job["static_configs"]
        for target in sc["targets"]
    ]
    assert targets == ["worker:9464"]

    # Prometheus sends its alerts to the compose Alertmanager, which mounts its config.
    alertmanagers = [
        target
        for am in scrape["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for target in sc["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    alertmanager = service("alertmanager")
    assert alertmanager["image"].startswith("prom/alertmanager:v")
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "alertmanager" in prometheus["depends_on"]
    assert any(str(p).startswith("9093:") for p in alertmanager["ports"])

    grafana = service("grafana")
    assert grafana["image"].startswith("grafana/grafana")
    variables = env(grafana)
    assert variables["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert variables["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert any(str(p).startswith("3000:") for p in grafana["ports"])
    mounts = dict(str(v).split(":")[:2] for v in grafana["volumes"] if str(v).startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = load_yaml(
        REPO_ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "driftwatch.yml"
    )["providers"][0]
    assert provider["type"] == "file"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    datasource = load_yaml(
        REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    )["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.split(maxsplit=1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    by_name: dict[str, list[str]] = {}
    for name, *rest in instructions:
        by_name.setdefault(name.upper(), []).append(rest[0] if rest else "")
    # an exact Python patch release and Debian release, not a floating tag
    assert re.fullmatch(
        r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", by_name["FROM"][0]
    )
    assert len(by_name["FROM"]) == 1
    runs = by_name["RUN"]
    lock_install = "pip install --require-hashes --no-deps -r requirements.lock"
    assert any(lock_install in run for run in runs), runs
    assert any("pip install --no-deps ." in run and "pip check" in run for run in runs), runs
    assert "requirements.lock ./" in by_name["COPY"][0], "the lock is copied before the code"
    user = by_name["USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}, "the image must not run as root"
    assert by_name["EXPOSE"] == ["9464"]
    assert "urllib" in by_name["HEALTHCHECK"][-1]
    assert by_name["CMD"][-1] == '["driftwatch", "worker"]'
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    # Whitelist (`*` then `!...`) or at least keep the virtualenv and git history out.
    assert "*" in ignored or {".git", ".venv"} <= set(ignored), ignored
    if "*" in ignored:
        assert "!requirements.lock" in ignored, "the lock must be in the build context"
