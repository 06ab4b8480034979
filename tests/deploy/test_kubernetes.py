"""The Kubernetes manifests of deploy/kubernetes/, validated offline.

Built-in kinds (Namespace, ConfigMap, Deployment, Service) are validated against the Kubernetes
OpenAPI schemas that the ``kubernetes-validate`` package ships (strict: unknown fields are
errors); no cluster or network is needed. The custom resources (ServiceMonitor,
PrometheusRule, ScaledObject, TriggerAuthentication) have no schema there: they are checked
structurally against the objects they refer to, and the PrometheusRule's embedded rules are
checked with promtool and against the rules file promtool tests.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # a test dependency (pyproject.toml), with the schemas offline
import pytest

from scripts.render_prometheusrule import render
from stream.settings import load_settings

from . import REPO_ROOT, describe, load_yaml, require_tool, run_tool

KUBE_DIR = REPO_ROOT / "deploy" / "kubernetes"
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "driftwatch-alerts.yml"
RENDER = REPO_ROOT / "scripts" / "render_prometheusrule.py"
#: Kubernetes version whose schemas the built-in objects are validated against.
KUBERNETES_VERSION = "1.30.0"
BUILT_IN = {"Namespace", "ConfigMap", "Deployment", "Service"}
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}
#: Partitions of the telemetry topic (docker-compose.yml creates it with 6).
TELEMETRY_PARTITIONS = 6


def load_all(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> list[dict[str, Any]]:
    kustomization = load_yaml(KUBE_DIR / "kustomization.yaml")
    return [doc for name in kustomization["resources"] for doc in load_all(KUBE_DIR / name)]


def one(kind: str) -> dict[str, Any]:
    (obj,) = [doc for doc in manifests() if doc["kind"] == kind]
    return obj


def settings_file() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(one("ConfigMap")["data"]["driftwatch.toml"])
    return dict(data["driftwatch"])


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBE_DIR / "kustomization.yaml")
    files = {p.name for p in KUBE_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"] == "driftwatch"
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in manifests()}
    assert {kind for _, kind in kinds} - {kind for _, kind in CUSTOM} == BUILT_IN
    assert kinds >= CUSTOM


@pytest.mark.parametrize(
    "obj",
    [doc for doc in manifests() if doc["kind"] in BUILT_IN],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_built_in_objects_match_the_kubernetes_schemas(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_broken_objects() -> None:
    """The validator is really applied: a wrong type and an unknown field are caught."""
    deployment = copy.deepcopy(one("Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["containerPort"] = "9464"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    service = copy.deepcopy(one("Service"))
    service["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_everything_lives_in_one_namespace_with_one_name_label() -> None:
    for doc in manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "driftwatch", doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "driftwatch", doc["kind"]


def test_deployment_runs_the_worker_unprivileged_with_secrets_as_files() -> None:
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (container,) = pod["containers"]
    assert container["args"] == ["driftwatch", "worker"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # No secret in the environment: the Secret is a read-only volume of files.
    for variable in container.get("env", []):
        assert "valueFrom" not in variable, variable
        assert "PASSWORD" not in variable["name"], variable
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    secret = volumes[mounts["/etc/driftwatch/secrets"]["name"]]["secret"]
    assert mounts["/etc/driftwatch/secrets"]["readOnly"] is True
    assert secret["defaultMode"] == 0o440
    files = {item["path"] for item in secret["items"]}
    settings = settings_file()
    for name in ("sasl_password_file", "ssl_cafile"):
        path = Path(settings[name])
        assert path.parent == Path("/etc/driftwatch/secrets") and path.name in files, name
    config = volumes[mounts["/etc/driftwatch"]["name"]]["configMap"]
    assert config["name"] == one("ConfigMap")["metadata"]["name"]
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env["DRIFTWATCH_CONFIG"] == "/etc/driftwatch/driftwatch.toml"
    # The worker's data directory is on a writable volume.
    data_dir = Path(settings["data_dir"])
    assert any(data_dir.is_relative_to(path) for path in mounts if path.startswith("/var/lib"))
    (port,) = container["ports"]
    assert port["containerPort"] == settings["metrics_port"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": port["name"]}


def test_settings_file_is_valid_for_the_worker(tmp_path: Path) -> None:
    """The ConfigMap's TOML loads with the worker's own settings loader."""
    text = one("ConfigMap")["data"]["driftwatch.toml"]
    secrets = {"sasl_password_file": "s3cret\n", "ssl_cafile": "-----BEGIN CERTIFICATE-----\n"}
    for name, content in secrets.items():  # the mounted files, stand-ins at test paths
        (tmp_path / name).write_text(content)
        text = text.replace(settings_file()[name], str(tmp_path / name))
    config = tmp_path / "driftwatch.toml"
    config.write_text(text)
    settings = load_settings(config, environ={})
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.telemetry_group == f"{settings.app_id}.telemetry"


def test_service_and_service_monitor_select_the_workers() -> None:
    service, monitor, deployment = one("Service"), one("ServiceMonitor"), one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"
    # The job label is the Service name; the alert rules match it.
    assert "driftwatch" in service["metadata"]["name"]


def test_scaled_object_scales_on_lag_up_to_the_partition_count() -> None:
    scaled, deployment = one("ScaledObject"), one("Deployment")
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert target["apiVersion"] == deployment["apiVersion"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] == TELEMETRY_PARTITIONS
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    settings = settings_file()
    assert metadata["bootstrapServers"] == settings["bootstrap_servers"]
    assert metadata["topic"] == settings["telemetry_topic"]
    assert metadata["consumerGroup"] == f"{settings['app_id']}.telemetry"
    assert metadata["allowIdleConsumers"] == "false"  # never more workers than partitions
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    assert int(metadata["lagThreshold"]) > 0
    auth = one("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
    parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    assert parameters == {"sasl", "username", "password", "tls", "ca"}
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == mounted


def test_prometheus_rule_is_generated_from_the_rules_file() -> None:
    rule = one("PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"]
    expected = render(RULES.read_text(encoding="utf-8"))
    actual = (KUBE_DIR / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert actual == expected, f"stale: run python3 {RENDER.relative_to(REPO_ROOT)}"


def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    import yaml

    promtool = require_tool("promtool")
    rules = tmp_path / "prometheusrule-groups.yml"
    rules.write_text(yaml.safe_dump({"groups": one("PrometheusRule")["spec"]["groups"]}))
    result = run_tool([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, describe(result)
    count = sum(len(group["rules"]) for group in load_yaml(RULES)["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout, describe(result)


def test_render_refuses_a_rules_file_it_cannot_embed() -> None:
    with pytest.raises(ValueError, match="top-level keys after"):
        render("groups:\n  - name: a\n    rules: []\nextra: 1\n")
    with pytest.raises(ValueError, match="one top-level 'groups:'"):
        render("rules: []\n")
