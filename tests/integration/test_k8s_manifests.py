"""The manifests against a real Kubernetes API: server-side apply, PodSecurity, real rollouts.

``k8s_cluster`` is a real kube-apiserver + kube-controller-manager (or the disposable cluster
of ``SLIPWAY_TEST_KUBECONFIG``); ``k8s_pods`` plays the kubelet (pods are bound to a fake node
and reported Ready, or kept unready on demand). Every kustomization is applied with
``kubectl apply --server-side`` into namespaces that enforce PodSecurity ``restricted``; the
ReplicaSet controller must then create the pods (no ``FailedCreate``) and ``kubectl rollout
status`` must complete. A custom resource whose kind the API does not serve yet has its CRD
applied first (and waited for until Established): the prometheus-operator kinds
(ServiceMonitor, PodMonitor, PrometheusRule) from ``tests/support/crds/``, our own test
stand-ins written from the documented API (the upstream CRDs are not vendored), so the API
server validates those objects against a structural schema too. Custom resources with no CRD
at all are listed in ``UNSHIPPED_CRDS`` (with the reason) and left out of the apply; nothing
else may be left out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.k8s import Cluster, ensure_namespace
from tests.support.k8s_pods import FakeKubelet

pytestmark = pytest.mark.integration

MANIFESTS = REPO / "manifests"
KUSTOMIZATIONS = {
    **{f"overlays/{p.name}": p for p in sorted((MANIFESTS / "overlays").iterdir()) if p.is_dir()},
    "mlflow": MANIFESTS / "mlflow",
    "monitoring": MANIFESTS / "monitoring",
    "pipeline": MANIFESTS / "pipeline",
}
ENFORCE = "pod-security.kubernetes.io/enforce"
RESTRICTED = {ENFORCE: "restricted"}
ROLLOUT_TIMEOUT = "40s"

# Custom resources the manifests use whose CRD is not in the repository, with the reason; they
# are left out of the apply. A CRD found in the repository (a stand-in under tests/support/crds/)
# is applied first instead. Empty: every custom resource is validated by the API server.
UNSHIPPED_CRDS: dict[tuple[str, str], str] = {}
STAND_IN_CRDS = REPO / "tests" / "support" / "crds"


# --------------------------------------------------------------------------------------------
# helpers


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _render(cluster: Cluster, path: Path) -> list[dict[str, Any]]:
    out = cluster.kubectl("kustomize", str(path), timeout=30).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _served_kinds(cluster: Cluster, api_version: str) -> set[str]:
    path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    with cluster.api() as client:
        response = client.get(path)
    if response.status_code == 404:
        return set()
    response.raise_for_status()
    return {r["kind"] for r in response.json()["resources"]}


def _vendored_crds() -> dict[tuple[str, str], Path]:
    """Every CustomResourceDefinition in the repository, by (group, kind)."""
    found = {}
    for path in REPO.rglob("*.y*ml"):
        parts = set(path.relative_to(REPO).parts)
        if parts & {".venv", ".git", "node_modules", ".slipway"}:
            continue
        text = path.read_text(errors="replace")
        if "CustomResourceDefinition" not in text:
            continue
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = path
    return found


def _apply_crd(cluster: Cluster, path: Path) -> None:
    """Apply the CRDs of ``path`` server-side and wait until the API serves them (Established)."""
    crds = cluster.kubectl("apply", "--server-side", "-f", str(path), "-o", "name").stdout
    for name in crds.split():
        cluster.kubectl("wait", "--for=condition=Established", name, "--timeout=30s", timeout=40)


def _ensure_served(cluster: Cluster, api_version: str, kind: str) -> None:
    """Make the API serve ``kind``: apply the repository's CRD for it unless already served.

    A cluster that already serves the kind (``SLIPWAY_TEST_KUBECONFIG`` with prometheus-operator
    installed) keeps its own CRD: a stand-in never replaces the real one.
    """
    if kind in _served_kinds(cluster, api_version):
        return
    vendored = _vendored_crds()
    key = (_group(api_version), kind)
    assert key in vendored, f"no CRD for {key} in the repository: write one in {STAND_IN_CRDS}"
    _apply_crd(cluster, vendored[key])
    assert kind in _served_kinds(cluster, api_version), f"{vendored[key]} did not serve {kind}"


def _apply_kustomization(
    cluster: Cluster, path: Path
) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """Apply ``path`` server-side into restricted namespaces; return the objects and what was left out.

    Each kustomization targets a cluster of its own: objects of the same names left by another
    one (dev and prod share the namespace and the PersistentVolume) are deleted first.
    """
    docs = _render(cluster, path)
    for doc in docs:
        if doc["kind"] == "Namespace":
            labels = doc["metadata"].get("labels") or {}
            assert labels.get(ENFORCE) == "restricted", (
                f"Namespace {doc['metadata']['name']} in {path} must enforce PodSecurity restricted "
                f"(label {ENFORCE}=restricted), it has {labels.get(ENFORCE)!r}"
            )
    vendored = _vendored_crds()
    served: dict[str, set[str]] = {}
    left_out: set[tuple[str, str]] = set()
    for doc in docs:
        api_version, kind = doc["apiVersion"], doc["kind"]
        if api_version not in served:
            served[api_version] = _served_kinds(cluster, api_version)
        if kind in served[api_version]:
            continue
        key = (_group(api_version), kind)
        if key in vendored:
            _apply_crd(cluster, vendored[key])
            served[api_version] = _served_kinds(cluster, api_version)
        else:
            left_out.add(key)
    kept = [d for d in docs if (_group(d["apiVersion"]), d["kind"]) not in left_out]
    cluster.kubectl(
        "delete", "-f", "-", "--ignore-not-found", "--wait", "--timeout=60s",
        input=yaml.safe_dump_all(kept), timeout=80,
    )  # fmt: skip
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    namespaces |= {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")}
    for namespace in sorted(namespaces):  # restricted enforced before any pod can be created
        ensure_namespace(cluster, namespace, RESTRICTED)

    if left_out:
        result = cluster.kubectl(
            "apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(kept)
        )
    else:
        result = cluster.kubectl("apply", "--server-side", "-k", str(path))
    assert "PodSecurity" not in result.stderr, f"apply of {path} warned: {result.stderr}"
    return docs, left_out


def _pods(cluster: Cluster, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    with cluster.api() as client:
        response = client.get(
            f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": label_selector}
        )
    response.raise_for_status()
    return response.json()["items"]


def _failed_creates(cluster: Cluster, namespace: str) -> list[str]:
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate", "-o", "json"
    )
    return [e["message"] for e in json.loads(out.stdout)["items"]]


def _wait_for(what: str, probe, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def _rollout_status(
    cluster: Cluster, namespace: str, name: str, timeout: str = ROLLOUT_TIMEOUT, check: bool = True
):
    seconds = float(timeout.rstrip("s"))
    return cluster.kubectl(
        "rollout", "status", f"deployment/{name}", "-n", namespace, f"--timeout={timeout}",
        timeout=seconds + 20, check=check,
    )  # fmt: skip


def _deployment(
    name: str, namespace: str, env: dict[str, str], replicas: int = 2
) -> dict[str, Any]:
    """A small Deployment that PodSecurity ``restricted`` admits."""
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                },
            },
        },
    }


def _apply_objects(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))


def _template_env(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    out = cluster.kubectl("get", f"deployment/{name}", "-n", namespace, "-o", "json").stdout
    container = json.loads(out)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


# --------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_kustomization_applies_server_side_and_rolls_out_under_restricted(
    name: str, k8s_cluster: Cluster, k8s_pods: FakeKubelet
) -> None:
    docs, left_out = _apply_kustomization(k8s_cluster, KUSTOMIZATIONS[name])

    unknown = left_out - UNSHIPPED_CRDS.keys()
    assert not unknown, (
        f"{name} uses custom resources whose CRD is neither served nor in the repository: "
        f"{sorted(unknown)}; write a stand-in CRD from the documented API in {STAND_IN_CRDS} "
        "(upstream CRDs are not vendored), or add it to UNSHIPPED_CRDS with the reason"
    )
    if left_out:
        print(f"\n{name}: applied without {sorted(left_out)} (CRD not in the repository)")

    deployments = [d for d in docs if d["kind"] == "Deployment"]
    for deployment in deployments:
        namespace, dep = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        _wait_for(
            f"the ReplicaSet controller created no pod for {namespace}/{dep} "
            f"(FailedCreate: {_failed_creates(k8s_cluster, namespace)})",
            lambda: _pods(k8s_cluster, namespace, selector),  # noqa: B023 - called right here
        )
        _rollout_status(k8s_cluster, namespace, dep)
        assert _failed_creates(k8s_cluster, namespace) == []
        status = json.loads(
            k8s_cluster.kubectl("get", f"deployment/{dep}", "-n", namespace, "-o", "json").stdout
        )
        assert status["status"]["readyReplicas"] == status["spec"]["replicas"] >= 1
    assert k8s_pods.errors == []


def test_restricted_namespace_refuses_a_privileged_pod_template(
    k8s_cluster: Cluster, k8s_pods: FakeKubelet
) -> None:
    """The control for the test above: PodSecurity is enforced, so a bad template fails."""
    namespace = "psa-refuses"
    ensure_namespace(k8s_cluster, namespace, RESTRICTED)
    bad = _deployment("bad", namespace, {})
    bad["spec"]["template"]["spec"]["securityContext"] = {}
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    _apply_objects(k8s_cluster, bad)
    messages = _wait_for(
        "no FailedCreate event for a privileged pod",
        lambda: _failed_creates(k8s_cluster, namespace),
    )
    assert "violates PodSecurity" in messages[0]
    assert _pods(k8s_cluster, namespace, {"app.kubernetes.io/name": "bad"}) == []


def test_rollout_status_times_out_while_pods_stay_unready(
    k8s_cluster: Cluster, k8s_pods: FakeKubelet
) -> None:
    namespace = "rollout-unready"
    ensure_namespace(k8s_cluster, namespace, RESTRICTED)
    with k8s_pods.keep_unready(namespace=namespace):
        _apply_objects(k8s_cluster, _deployment("stuck", namespace, {"STEP": "1"}))
        result = _rollout_status(k8s_cluster, namespace, "stuck", timeout="10s", check=False)
        assert result.returncode != 0, result.stdout
        assert "timed out" in result.stderr
        pods = _pods(k8s_cluster, namespace, {"app.kubernetes.io/name": "stuck"})
        assert pods, "the ReplicaSet controller created no pod"
        assert all(p["status"]["phase"] == "Running" for p in pods)
        assert all(
            c["status"] == "False"
            for p in pods
            for c in p["status"]["conditions"]
            if c["type"] == "Ready"
        )
    _rollout_status(k8s_cluster, namespace, "stuck", timeout="20s")  # once Ready, it completes


def test_rollout_undo_restores_the_previous_pod_template(
    k8s_cluster: Cluster, k8s_pods: FakeKubelet
) -> None:
    namespace, name = "rollout-undo", "app"
    ensure_namespace(k8s_cluster, namespace, RESTRICTED)
    _apply_objects(k8s_cluster, _deployment(name, namespace, {"COLOUR": "blue"}))
    _rollout_status(k8s_cluster, namespace, name)
    _apply_objects(k8s_cluster, _deployment(name, namespace, {"COLOUR": "green"}))
    _rollout_status(k8s_cluster, namespace, name)
    assert _template_env(k8s_cluster, namespace, name) == {"COLOUR": "green"}
    history = k8s_cluster.kubectl(
        "rollout", "history", f"deployment/{name}", "-n", namespace
    ).stdout
    assert {"1", "2"} <= {line.split()[0] for line in history.splitlines()[2:] if line.strip()}

    k8s_cluster.kubectl("rollout", "undo", f"deployment/{name}", "-n", namespace)
    _rollout_status(k8s_cluster, namespace, name)

    assert _template_env(k8s_cluster, namespace, name) == {"COLOUR": "blue"}
    pods = [
        p
        for p in _pods(k8s_cluster, namespace, {"app.kubernetes.io/name": name})
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 2
    assert all(
        p["spec"]["containers"][0]["env"] == [{"name": "COLOUR", "value": "blue"}] for p in pods
    )
    history = k8s_cluster.kubectl(
        "rollout", "history", f"deployment/{name}", "-n", namespace
    ).stdout
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["2", "3"], history  # revision 1 came back as revision 3


def test_monitoring_custom_resources_are_stored_as_rendered(
    k8s_cluster: Cluster, k8s_pods: FakeKubelet
) -> None:
    """The monitors and the rules reach the API (not left out) and nothing of them is pruned."""
    docs, left_out = _apply_kustomization(k8s_cluster, KUSTOMIZATIONS["monitoring"])
    assert left_out == set()
    custom = [d for d in docs if _group(d["apiVersion"]) == "monitoring.coreos.com"]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in custom) == [
        ("PodMonitor", "slipway-guard"),
        ("PodMonitor", "slipway-mirror"),
        ("PrometheusRule", "slipway-alerts"),
        ("PrometheusRule", "slipway-guard"),
        ("ServiceMonitor", "slipway-pushgateway"),
        ("ServiceMonitor", "slipway-server"),
    ]
    for doc in custom:
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        stored = json.loads(
            k8s_cluster.kubectl(
                "get", f"{kind}.monitoring.coreos.com/{name}", "-n",
                doc["metadata"]["namespace"], "-o", "json",
            ).stdout
        )  # fmt: skip
        assert stored["spec"] == doc["spec"], f"{kind}/{name} was changed by the API (pruned?)"


def _set_endpoint_field(field: str, value: Any):
    def mutate(spec: dict[str, Any]) -> None:
        endpoints = spec.get("endpoints") or spec["podMetricsEndpoints"]
        endpoints[0][field] = value

    return mutate


def _set_rule_for(value: Any):
    def mutate(spec: dict[str, Any]) -> None:
        rule = next(r for g in spec["groups"] for r in g["rules"] if "for" in r)
        rule["for"] = value

    return mutate


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "field"),
    [
        ("ServiceMonitor", "slipway-server", _set_endpoint_field("honorLabels", "true"), "honorLabels"),
        ("ServiceMonitor", "slipway-pushgateway", _set_endpoint_field("port", 9091), "port"),
        ("PodMonitor", "slipway-mirror", _set_endpoint_field("interval", 60), "interval"),
        ("PodMonitor", "slipway-mirror", _set_endpoint_field("interval", "one minute"), "interval"),
        ("PrometheusRule", "slipway-alerts", _set_rule_for(15), "for"),
    ],
    ids=["honorLabels-string", "port-integer", "interval-integer", "interval-not-a-duration",
         "for-integer"],
)  # fmt: skip
def test_api_server_refuses_a_monitoring_field_of_the_wrong_type(
    kind: str, name: str, mutate, field: str, k8s_cluster: Cluster
) -> None:
    """The control for the test above: the schema is enforced, so a mistyped field is refused."""
    namespace = "crd-refuses"
    ensure_namespace(k8s_cluster, namespace, RESTRICTED)
    docs = _render(k8s_cluster, KUSTOMIZATIONS["monitoring"])
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    _ensure_served(k8s_cluster, doc["apiVersion"], kind)
    doc["metadata"]["namespace"] = namespace

    def apply(obj: dict[str, Any]):
        return k8s_cluster.kubectl(
            "apply", "--server-side", "--dry-run=server", "-f", "-",
            input=yaml.safe_dump(obj), check=False,
        )  # fmt: skip

    accepted = apply(doc)
    assert accepted.returncode == 0, f"the unchanged {kind}/{name} is refused: {accepted.stderr}"
    mutate(doc["spec"])
    refused = apply(doc)
    assert refused.returncode != 0, f"{kind}/{name} with a bad {field} was accepted"
    assert field in refused.stderr, refused.stderr
