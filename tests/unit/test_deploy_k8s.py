"""deploy/k8s/: schema-valid Kubernetes objects that agree with each other and with scv.

No cluster here, so: every object is validated against the Kubernetes 1.30 OpenAPI schema
in strict mode (kubernetes-validate ships the schemas; unknown fields fail), the Strimzi
``KafkaTopic`` resources (a CRD it has no schema for) are checked field by field and must
equal what ``scv topics strimzi`` generates from the workers' own ConfigMap, and the
cross-references (selectors, ports, probes, volumes, Secrets, image) are checked here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scv.settings import Settings
from scv.strimzi import kafka_topics, render
from scv.topics import topic_specs

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def objects(kustomization: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object ``kubectl apply -k`` would create, by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in load(K8S / resource):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


def one(objects: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    [obj] = [o for (k, _), o in objects.items() if k == kind]
    return obj


def test_every_object_is_valid_against_the_kubernetes_schema(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert {kind for kind, _ in objects} == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
    }
    for (kind, name), obj in objects.items():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert DNS1123.match(name), f"{kind} {name}"


def test_the_validator_catches_a_misspelt_field(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Strict mode is what makes the check worth having: a typo is not silently ignored."""
    broken = yaml.safe_load(yaml.safe_dump(one(objects, "StatefulSet")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_workers_run_the_image_with_state_volume_probes_and_config(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    sts = one(objects, "StatefulSet")
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [container] = pod["spec"]["containers"]

    # the image built from deploy/Dockerfile, tagged with the package version
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    compose_image = compose["services"]["worker-1"]["image"]
    assert container["image"] == f"{compose_image.split(':')[0]}:{version}"
    assert container.get("command") is None and container["args"] == ["worker"]
    # peers forward profile API calls to the pod's own address
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["SCV_WEB_URL"]["value"] == "http://$(POD_IP):6066"

    config = one(objects, "ConfigMap")
    env = config["data"]
    assert {
        ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref
    } == {config["metadata"]["name"]}
    secret_refs = {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref}
    assert all(("Secret", name) in objects for name in secret_refs)
    secret_keys = {key for name in secret_refs for key in objects[("Secret", name)]["stringData"]}
    assert {"SCV_API_TOKEN", "SCV_SASL_USERNAME", "SCV_SASL_PASSWORD"} <= secret_keys
    assert not secret_keys & set(env), "a setting in both the ConfigMap and a Secret"
    # every variable is one scv reads (a typo would be ignored silently at run time)
    known = {f"SCV_{name.upper()}" for name in Settings.model_fields}
    assert set(env) | secret_keys <= known
    Settings(**{k[4:].lower(): v for k, v in env.items()})  # and each value parses

    # HTTP: one named port, the one scv listens on, used by both probes
    [port] = container["ports"]
    assert port["containerPort"] == int(env["SCV_WEB_PORT"])
    assert env["SCV_WEB_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"

    # RocksDB on a per-pod volume claim, under SCV_DATA_DIR
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["SCV_DATA_DIR"]).is_relative_to(mounts[claim["metadata"]["name"]])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # every other mount is a declared volume; the CA file is where SCV_SSL_CAFILE says
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert set(mounts) == set(volumes) | {claim["metadata"]["name"]}
    ca = volumes["kafka-ca"]["secret"]["secretName"]
    assert ("Secret", ca) in objects
    assert Path(env["SCV_SSL_CAFILE"]).parent == Path(mounts["kafka-ca"])
    assert Path(env["SCV_SSL_CAFILE"]).name in objects[("Secret", ca)]["stringData"]

    # the image's non-root user (deploy/Dockerfile creates uid 10001) and a clean shutdown
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30


def test_service_and_disruption_budget_select_the_workers(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    sts = one(objects, "StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    service = objects[("Service", sts["spec"]["serviceName"])]
    assert service["spec"]["clusterIP"] == "None"  # headless: the StatefulSet's pod DNS
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == container["ports"][0]["name"]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1 and sts["spec"]["replicas"] >= 2


def test_kafka_topics_are_the_topics_the_workers_need(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """deploy/k8s/kafka-topics.yaml == ``scv topics strimzi`` with the ConfigMap's settings."""
    env = one(objects, "ConfigMap")["data"]
    settings = Settings(**{k[4:].lower(): v for k, v in env.items()})
    path = K8S / "kafka-topics.yaml"
    cluster = load(path)[0]["metadata"]["labels"]["strimzi.io/cluster"]
    assert path.read_text() == render(settings, cluster), (
        "deploy/k8s/kafka-topics.yaml is out of date; regenerate it with the ConfigMap's "
        "SCV_* values: see deploy/README.md"
    )
    committed = load(path)
    assert committed == kafka_topics(settings, cluster)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert {t["spec"]["topicName"] for t in committed} == set(specs)
    for topic in committed:
        assert (topic["apiVersion"], topic["kind"]) == ("kafka.strimzi.io/v1beta2", "KafkaTopic")
        assert DNS1123.match(topic["metadata"]["name"])
        spec, want = topic["spec"], specs[topic["spec"]["topicName"]]
        assert set(spec) <= {"topicName", "partitions", "replicas", "config"}
        assert spec["partitions"] == want.partitions
        assert spec["replicas"] == int(env["SCV_REPLICATION_FACTOR"])
        policy = spec.get("config", {}).get("cleanup.policy", "delete")
        assert (policy == "compact") == want.compacted, topic["metadata"]["name"]
    # the design's invariants, on the resources themselves
    by_name = {t["spec"]["topicName"]: t["spec"] for t in committed}
    assert by_name["identity.events.v1"]["partitions"] == 1  # single-writer resolver
    assert by_name["profiles.v1"]["config"]["cleanup.policy"] == "compact"


def test_strimzi_names_are_valid_for_any_prefix() -> None:
    settings = Settings(topic_prefix="Team_A.", app_id="SCV_Prod")
    for topic in kafka_topics(settings, "c"):
        assert DNS1123.match(topic["metadata"]["name"]), topic["metadata"]["name"]
        assert topic["spec"]["topicName"].startswith("Team_A.")  # the real name is kept
