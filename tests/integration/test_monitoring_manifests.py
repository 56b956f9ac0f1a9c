"""manifests/monitoring rendered with kubectl kustomize, validated and scanned for real.

``kubernetes-validate --strict`` (Kubernetes 1.30) checks every built-in object; the
PrometheusRule is a prometheus-operator custom resource that it has no schema for, so it is
left out of that run only. ``checkov`` scans everything with zero failures, with the same
reasoned skips as the other kustomizations.
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
from tests.integration.test_manifests import CHECKOV_SKIPS, KUBERNETES_VERSION
from tests.support import REPO

pytestmark = pytest.mark.integration

FOLDER = REPO / "manifests" / "monitoring"
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
    builtin = [d for d in docs if d["kind"] != "PrometheusRule"]
    assert len(builtin) == len(docs) - 1
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
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "slipway-monitoring"
    }
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
