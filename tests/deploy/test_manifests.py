"""deploy/kubernetes: every manifest valid for a pinned Kubernetes version (kubernetes-validate, strict: no unknown
fields), the pod locked down (non-root, read-only root, no privilege escalation, no capabilities, seccomp), probed
(/health, /ready) and bounded (requests and limits), and every setting it passes a real configuration key."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cds_service.auth import TrustedClient
from cds_service.config import ENV_PREFIX, Settings, load_settings
from tests.conftest import ROOT

yaml = pytest.importorskip("yaml", reason="PyYAML (the test extra) reads the manifests")

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the oldest release a site is likely to run; its schemas ship in kubernetes-validate
# Environment variables the pod sets that are not BPCDS_* settings, each read by a library the service uses.
OTHER_ENV = {
    "PGPASSWORD": "libpq: the password of BPCDS_DATABASE_URL's user",
    "TMPDIR": "Python's tempfile (gunicorn's worker heartbeat files)",
}


def _kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return data


def _manifests() -> list[Path]:
    return [KUBERNETES / name for name in _kustomization()["resources"]]


def _by_kind() -> dict[str, dict[str, Any]]:
    docs = [doc for path in _manifests() for doc in yaml.safe_load_all(path.read_text()) if doc]
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs), "one resource of each kind"
    return kinds


def _container() -> dict[str, Any]:
    (container,) = _by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_kustomization_lists_every_manifest_and_nothing_else():
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(_kustomization()["resources"]) == sorted(on_disk)
    assert set(_by_kind()) == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


def test_every_manifest_is_valid_for_the_pinned_kubernetes_version_in_strict_mode():
    paths = [str(p) for p in _manifests()]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--kubernetes-version", KUBERNETES_VERSION, "--strict", *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.findall(r"INFO (\S+) passed for resource", done.stdout + done.stderr)
    assert sorted(passed) == sorted(paths), done.stdout + done.stderr


def test_strict_validation_refuses_an_unknown_field(tmp_path):
    """The check above can fail: a misspelt field is an error, not silently dropped."""
    bad = tmp_path / "deployment.yaml"
    bad.write_text(
        (KUBERNETES / "deployment.yaml").read_text().replace("readOnlyRootFilesystem", "readOnlyRootFileSystem")
    )
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "-k", KUBERNETES_VERSION, "--strict", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "readOnlyRootFileSystem" in done.stdout + done.stderr


def test_the_pod_runs_as_the_images_non_root_user_with_nothing_it_does_not_need():
    pod = _by_kind()["Deployment"]["spec"]["template"]["spec"]
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == tuple(
        int(g) for g in dockerfile_user.groups()
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = _container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False and security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_every_writable_path_is_an_emptydir_and_the_rest_is_mounted_read_only():
    pod = _by_kind()["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    writable = {path for path, m in mounts.items() if "emptyDir" in volumes[m["name"]]}
    # TMPDIR, the metrics directory and the image's working directory (Dockerfile VOLUME), nothing else
    volumes_declared = json.loads(re.search(r"^VOLUME (.+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    assert writable == {env["TMPDIR"], env["BPCDS_METRICS_DIR"], *volumes_declared}
    for path, mount in mounts.items():
        assert path in writable or mount.get("readOnly") is True, path
        if path in writable:
            assert volumes[mount["name"]]["emptyDir"].get("sizeLimit"), f"{path}: an emptyDir without a size limit"


def test_probes_resources_and_replicas():
    deployment = _by_kind()["Deployment"]
    container = _container()
    assert deployment["spec"]["replicas"] == 2
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port == {"http": 8080, "metrics": 9464}
    config = _by_kind()["ConfigMap"]["data"]
    assert int(config["BPCDS_METRICS_PORT"]) == port["metrics"]  # Prometheus scrapes its own port, not the hook port
    ingress = _by_kind()["NetworkPolicy"]["spec"]["ingress"]
    open_ports = {p["port"] for rule in ingress if "from" not in rule for p in rule["ports"]}
    assert open_ports == {"http"}  # the metrics port only from the monitoring namespace
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}, kind
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_service_autoscaler_and_disruption_budget_select_the_pods():
    kinds = _by_kind()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": kinds["Deployment"]["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # the declared replica count production checks against its replay cache is the most the autoscaler runs
    assert int(kinds["ConfigMap"]["data"]["BPCDS_REPLICAS"]) == hpa["spec"]["maxReplicas"]


def test_every_setting_the_manifests_pass_is_a_configuration_key_and_production_accepts_them():
    kinds = _by_kind()
    keys = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    config = kinds["ConfigMap"]["data"]
    assert set(config) <= keys, sorted(set(config) - keys)
    container = _container()
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [kinds["ConfigMap"]["metadata"]["name"]]
    env = {e["name"] for e in container["env"]}
    assert {e for e in env if not e.startswith(ENV_PREFIX)} <= set(OTHER_ENV)
    assert {e for e in env if e.startswith(ENV_PREFIX)} <= keys
    # the ConfigMap alone is a valid production configuration, with a replay cache every replica shares
    settings = load_settings(environ=dict(config))
    assert settings.is_production and settings.replicas > 1
    assert settings.replay_backend() == "redis" and settings.replay_scope() == "replicas"
    assert settings.database_url.startswith("postgresql://") and "@" in settings.database_url
    assert ":" not in settings.database_url.split("//", 1)[1].split("@", 1)[0], "no password in the ConfigMap"


def test_the_secret_is_a_marked_template_with_what_the_deployment_reads():
    kinds = _by_kind()
    secret = kinds["Secret"]
    text = (KUBERNETES / "secret.yaml").read_text()
    assert text.startswith("# TEMPLATE — PLACEHOLDER VALUES")
    values = secret["stringData"]
    assert all("REPLACE_ME" in v for v in values.values()), "every value a placeholder"
    for client in json.loads(values["trusted-clients.json"]):  # the placeholder has the real shape
        TrustedClient.from_config(client)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = _container()
    referenced = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    (mounted,) = [v for v in pod["volumes"] if "secret" in v]
    assert mounted["secret"]["secretName"] == secret["metadata"]["name"]
    files = {i["key"] for i in mounted["secret"]["items"]}
    assert referenced | files == set(values)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == mounted["name"]]
    clients_file = kinds["ConfigMap"]["data"]["BPCDS_TRUSTED_CLIENTS_FILE"]
    assert clients_file == f"{mount['mountPath']}/{mounted['secret']['items'][0]['path']}"
