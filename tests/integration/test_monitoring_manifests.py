"""manifests/monitoring rendered with kubectl kustomize, validated and scanned for real.

``kubernetes-validate --strict`` (Kubernetes 1.30) checks every built-in object; the
PrometheusRule, ServiceMonitors and PodMonitor are prometheus-operator custom resources that it
has no schema for, so they are left out of that run only (the real kube-apiserver validates
them against the CRD schemas in tests/integration/test_k8s_manifests.py). ``checkov`` scans
everything with zero failures, with the same reasoned skips as the other kustomizations. The
scrape objects are checked against what they scrape: the Service, pod ports, paths and
``prometheus.io/*`` annotations of the server overlays and the mirror, and the NetworkPolicies
that must let Prometheus in.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.cli.mirror import mirror_cmd
from slipway.monitoring.kpis import load_kpi_catalog
from slipway.monitoring.mirror.rules import (
    ALLOWLIST_FILE,
    ALLOWLIST_KEY,
    render_allowlist_configmap,
)
from slipway.release.overlay import render_overlay
from tests.integration.test_manifests import CHECKOV_SKIPS, KUBERNETES_VERSION
from tests.support import REPO

pytestmark = pytest.mark.integration

FOLDER = REPO / "manifests" / "monitoring"
OVERLAYS = REPO / "manifests" / "overlays"
OPERATOR_GROUP = "monitoring.coreos.com"
VENV_BIN = Path(sys.executable).parent


def _tool(path: str | Path | None, what: str) -> str:
    if path is None or not Path(path).exists():
        pytest.fail(f"{what} is required for the monitoring manifest tests and was not found")
    return str(path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kubectl = _tool(shutil.which("kubectl"), "kubectl >= 1.27 (kustomize v5)")
    out = tmp_path_factory.mktemp("monitoring") / "monitoring.yaml"
    proc = subprocess.run(
        [kubectl, "kustomize", str(FOLDER)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out.write_text(proc.stdout)
    return out


@pytest.fixture(scope="module")
def docs(rendered: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(rendered.read_text()))


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}"
    return found[0]


def test_kubernetes_validate_strict(docs: list[dict], tmp_path: Path) -> None:
    builtin = [d for d in docs if d["apiVersion"].split("/")[0] != OPERATOR_GROUP]
    # 2 PrometheusRules (KPIs, guard), 2 ServiceMonitors, 2 PodMonitors (mirror, guard)
    assert len(builtin) == len(docs) - 6
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    validator = _tool(VENV_BIN / "kubernetes-validate", "kubernetes-validate (dev dependency)")
    proc = subprocess.run(
        [validator, "-k", KUBERNETES_VERSION, "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = [line for line in proc.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(builtin)


@pytest.mark.slow
def test_checkov_finds_no_failure(rendered: Path, docs: list[dict]) -> None:
    checkov = _tool(VENV_BIN / "checkov", "checkov (dev dependency)")
    argv = [checkov, "-f", str(rendered), "--framework", "kubernetes", "--quiet", "--compact"]
    argv += ["--skip-download", "-o", "json", "--skip-check", ",".join(CHECKOV_SKIPS)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(proc.stdout)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= len(docs)


def test_mirror_runs_restricted_with_irsa_and_probes(docs: list[dict]) -> None:
    # the guard's Role and RoleBinding live in the model server's namespace (guard-rbac.yaml)
    rbac = {"Role", "RoleBinding"}
    assert {
        d["metadata"].get("namespace") for d in docs if d["kind"] not in {"Namespace", *rbac}
    } == {"slipway-monitoring"}
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] in rbac} == {"slipway"}
    namespace = _one(docs, "Namespace", "slipway-monitoring")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = _one(docs, "Deployment", "slipway-mirror")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two mirrors
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    account = _one(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["name"] == "slipway-mirror"
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/slipway-mirror"
    )
    assert pod["automountServiceAccountToken"] is account["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"]) == (True, False)
    assert sc["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    for res in ("requests", "limits"):
        assert set(container["resources"][res]) == {"cpu", "memory"}
    assert container["command"] == ["python", "-m", "slipway", "mirror"]


def test_mirror_args_are_options_of_the_cli_and_mount_the_allowlist(docs: list[dict]) -> None:
    pod = _one(docs, "Deployment", "slipway-mirror")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    options = {name.replace("_", "-") for name in inspect.signature(mirror_cmd).parameters}
    assert set(args) <= options
    assert args["target"].startswith("http://")
    assert "/federate?match%5B%5D=" in args["target"]
    assert args["port"] == str(container["ports"][0]["containerPort"])
    mount = {m["mountPath"]: m for m in container["volumeMounts"]}["/etc/slipway-mirror"]
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    assert args["allowlist"] == f"/etc/slipway-mirror/{ALLOWLIST_KEY}"
    configmap = _one(docs, "ConfigMap", volume["configMap"]["name"])
    assert ALLOWLIST_KEY in configmap["data"]


def test_committed_allowlist_matches_the_catalog() -> None:
    catalog = load_kpi_catalog(REPO / "monitoring" / "kpis.yaml")
    committed = (REPO / ALLOWLIST_FILE).read_text(encoding="utf-8")
    assert committed == render_allowlist_configmap(catalog), (
        f"{ALLOWLIST_FILE} is out of date: run `slipway alarms generate` and commit"
    )


# --------------------------------------------------------------------------------------------
# scrape objects (ServiceMonitor / PodMonitor) against what they scrape


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels only (``{}`` selects everything)."""
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is checked here: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _container_port(container: dict[str, Any], name_or_number: str | int) -> int:
    for port in container["ports"]:
        if name_or_number in (port.get("name"), port["containerPort"]):
            return port["containerPort"]
    raise AssertionError(f"container {container['name']} has no port {name_or_number!r}")


def _admits_monitoring_on(policies: list[dict], pod_labels: dict[str, str], port: str) -> bool:
    """True when a NetworkPolicy selecting the pod lets namespace ``monitoring`` in on ``port``."""
    for policy in policies:
        if not _selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            namespaces = {
                peer.get("namespaceSelector", {})
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name")
                for peer in rule.get("from", [])
            }
            if "monitoring" in namespaces and port in {p["port"] for p in rule["ports"]}:
                return True
    return False


@pytest.fixture(scope="module")
def server_overlays() -> dict[str, list[dict[str, Any]]]:
    kubectl = _tool(shutil.which("kubectl"), "kubectl >= 1.27 (kustomize v5)")
    return {
        p.name: list(yaml.safe_load_all(render_overlay(p, kubectl=kubectl)))
        for p in sorted(OVERLAYS.iterdir())
        if p.is_dir()
    }


def test_every_operator_object_carries_the_release_label_of_the_mirrors_prometheus(
    docs: list[dict],
) -> None:
    custom = [d for d in docs if d["apiVersion"] == f"{OPERATOR_GROUP}/v1"]
    assert {d["kind"] for d in custom} == {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
    releases = {d["metadata"]["labels"].get("release") for d in custom}
    assert None not in releases, "a monitoring.coreos.com object has no release label"
    (release,) = releases
    # the mirror reads that release's Prometheus: for a release named like the chart,
    # kube-prometheus-stack names its pods prometheus-<release>-prometheus-<n>
    (container,) = _one(docs, "Deployment", "slipway-mirror")["spec"]["template"]["spec"][
        "containers"
    ]
    target = next(a for a in container["args"] if a.startswith("--target="))
    assert f"//prometheus-{release}-prometheus-0." in target


def test_server_servicemonitor_scrapes_the_servers_metrics_port_in_every_overlay(
    docs: list[dict], server_overlays: dict[str, list[dict]]
) -> None:
    monitor = _one(docs, "ServiceMonitor", "slipway-server")["spec"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert "honorLabels" not in endpoint  # the server's own job/instance labels are right
    assert server_overlays, "no overlay under manifests/overlays"
    for overlay, objects in server_overlays.items():
        services = [
            s
            for s in objects
            if s["kind"] == "Service"
            and s["metadata"]["namespace"] in monitor["namespaceSelector"]["matchNames"]
            and _selects(monitor["selector"], s["metadata"].get("labels", {}))
        ]
        assert [s["metadata"]["name"] for s in services] == ["slipway-server"], overlay
        (port,) = [p for p in services[0]["spec"]["ports"] if p.get("name") == endpoint["port"]]
        deployment = _one(objects, "Deployment", "slipway-server")
        template = deployment["spec"]["template"]
        assert _selects(
            {"matchLabels": services[0]["spec"]["selector"]}, template["metadata"]["labels"]
        )
        (container,) = [c for c in template["spec"]["containers"] if c["name"] == "server"]
        annotations = template["metadata"]["annotations"]  # kept for annotation-based scrapers
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == endpoint["path"]
        assert int(annotations["prometheus.io/port"]) == _container_port(
            container, port["targetPort"]
        )
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        assert _admits_monitoring_on(policies, template["metadata"]["labels"], port["targetPort"])


def test_mirror_podmonitor_scrapes_the_mirrors_metrics_port(docs: list[dict]) -> None:
    monitor = _one(docs, "PodMonitor", "slipway-mirror")
    spec = monitor["spec"]
    (endpoint,) = spec["podMetricsEndpoints"]
    deployment = _one(docs, "Deployment", "slipway-mirror")
    template = deployment["spec"]["template"]
    assert spec["namespaceSelector"]["matchNames"] == [deployment["metadata"]["namespace"]]
    assert _selects(spec["selector"], template["metadata"]["labels"])
    (container,) = template["spec"]["containers"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == endpoint["path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == _container_port(container, endpoint["port"])
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert _admits_monitoring_on(policies, template["metadata"]["labels"], endpoint["port"])


def test_pushgateway_servicemonitor_keeps_the_pushed_job_label(docs: list[dict]) -> None:
    spec = _one(docs, "ServiceMonitor", "slipway-pushgateway")["spec"]
    (endpoint,) = spec["endpoints"]
    assert endpoint["honorLabels"] is True  # job="slipway-pipeline" is an alarm dimension
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert spec["namespaceSelector"] == {"matchNames": ["monitoring"]}
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus-pushgateway"}}
