"""The guard's manifests: RBAC checked by the real API server, arguments, catalog, alert rules.

``kubectl auth can-i --as`` the guard's ServiceAccount asks the real kube-apiserver's RBAC
authorizer what the Role grants (and refuses); promtool checks and unit-tests the guard's own
alert rules.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.cli.guard import guard_cmd
from slipway.guard import policy_from_catalog
from slipway.monitoring.kpis import load_kpi_catalog, parse_kpi_catalog
from tests.support import REPO
from tests.support.k8s import Cluster, ensure_namespace

pytestmark = pytest.mark.integration

FOLDER = REPO / "manifests" / "monitoring"
SUBJECT = "system:serviceaccount:slipway-monitoring:slipway-guard"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(FOLDER)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_guard_args_are_options_of_the_cli_and_mount_the_catalog(docs: list[dict]) -> None:
    deployment = _one(docs, "Deployment", "slipway-guard")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (
        1,
        {"type": "Recreate"},
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "slipway", "guard"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    options = {name.replace("_", "-") for name in inspect.signature(guard_cmd).parameters}
    assert set(args) <= options
    assert args["port"] == str(container["ports"][0]["containerPort"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/slipway-guard"]]["configMap"]["name"] == "slipway-guard-catalog"
    configmap = _one(docs, "ConfigMap", "slipway-guard-catalog")
    assert args["catalog"] == "/etc/slipway-guard/kpis.yaml"
    mounted = parse_kpi_catalog(yaml.safe_load(configmap["data"]["kpis.yaml"]))
    full = load_kpi_catalog(REPO / "monitoring" / "kpis.yaml")
    assert policy_from_catalog(mounted) == policy_from_catalog(full)
    # the token is mounted explicitly where the kubernetes client's in-cluster config reads it
    token = volumes[mounts["/var/run/secrets/kubernetes.io/serviceaccount"]]["projected"]
    paths = [
        (s.get("serviceAccountToken") or {}).get("path")
        or next(iter(s.get("configMap", s.get("downwardAPI", {})).get("items", [{}])))["path"]
        for s in token["sources"]
    ]
    assert paths == ["token", "ca.crt", "namespace"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "slipway-guard"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_role_grants_exactly_the_server_deployment_and_its_replicasets(docs: list[dict]) -> None:
    role = _one(docs, "Role", "slipway-guard")
    assert role["metadata"]["namespace"] == "slipway"
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["slipway-server"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    ]
    binding = _one(docs, "RoleBinding", "slipway-guard")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "slipway-guard", "namespace": "slipway-monitoring"}
    ]


def _can(cluster: Cluster, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, "-n", "slipway", "--as", SUBJECT, check=False)
    return result.stdout.strip() == "yes"


def test_the_api_server_allows_the_guard_only_what_it_needs(
    k8s_cluster: Cluster, docs: list[dict]
) -> None:
    ensure_namespace(k8s_cluster, "slipway", {"pod-security.kubernetes.io/enforce": "restricted"})
    ensure_namespace(
        k8s_cluster, "slipway-monitoring", {"pod-security.kubernetes.io/enforce": "restricted"}
    )
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    rbac = [d for d in rbac if "guard" in d["metadata"]["name"]]
    k8s_cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(rbac))
    server = "deployment/slipway-server"
    for verb in ("get", "list", "watch", "patch"):
        assert _can(k8s_cluster, verb, server), verb
    for verb in ("get", "list", "watch"):
        assert _can(k8s_cluster, verb, "replicasets.apps"), verb
    refused = [
        ("delete", server),
        ("update", server),
        ("create", "deployments.apps"),
        ("patch", "deployment/slipway-mirror"),
        ("patch", "replicasets.apps"),
        ("get", "secrets"),
        ("create", "pods"),
        ("list", "deployments.apps"),  # not without the metadata.name field selector
    ]
    assert [r for r in refused if _can(k8s_cluster, *r)] == []
    other = k8s_cluster.kubectl(
        "auth", "can-i", "get", server, "-n", "default", "--as", SUBJECT, check=False
    )
    assert other.stdout.strip() == "no"


# --------------------------------------------------------------------------------------------
# the guard's alert rules, with promtool


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is required: `make install` (Debian package prometheus)")
    return found


def test_guard_alert_rules_check_and_fire_as_documented(docs: list[dict], tmp_path: Path) -> None:
    rule = _one(docs, "PrometheusRule", "slipway-guard")
    rules = tmp_path / "guard-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(
        [_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    up = 'up{job="slipway-monitoring/slipway-guard"}'
    by_name = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}

    def fired(alert: str, **labels: str) -> list[dict]:
        """The alert as promtool must report it: the rule's labels and rendered annotations."""
        annotations = {
            k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], v)
            for k, v in by_name[alert]["annotations"].items()
        }
        return [
            {"exp_labels": {**by_name[alert]["labels"], **labels}, "exp_annotations": annotations}
        ]

    cases = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {  # down: no healthy scrape for 5 minutes
                "interval": "1m",
                "input_series": [{"series": up, "values": "1 1 0 0 0 0 0 0 0 0"}],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "SlipwayGuardDown", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "SlipwayGuardDown",
                        "exp_alerts": fired("SlipwayGuardDown"),
                    },
                ],
            },
            {  # alive but its last completed check stays at t=0
                "interval": "1m",
                "input_series": [
                    {"series": "slipway_guard_last_check_timestamp_seconds", "values": "0x20"},
                    {"series": up, "values": "1x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "SlipwayGuardNotChecking", "exp_alerts": []},
                    {
                        "eval_time": "11m",
                        "alertname": "SlipwayGuardNotChecking",
                        "exp_alerts": fired("SlipwayGuardNotChecking"),
                    },
                    {"eval_time": "11m", "alertname": "SlipwayGuardDown", "exp_alerts": []},
                ],
            },
            {  # one rollback, one blocked window
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'slipway_guard_rollbacks_total{kpi="http-5xx-ratio"}',
                        "values": "0 0 1 1 1",
                    },
                    {
                        "series": 'slipway_guard_verdicts_total{verdict="blocked"}',
                        "values": "0 0 0 1 1",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "SlipwayGuardRolledBack",
                        "exp_alerts": fired("SlipwayGuardRolledBack", kpi="http-5xx-ratio"),
                    },
                    {
                        "eval_time": "4m",
                        "alertname": "SlipwayGuardCouldNotRollBack",
                        "exp_alerts": fired("SlipwayGuardCouldNotRollBack", verdict="blocked"),
                    },
                ],
            },
        ],
    }
    tests = tmp_path / "guard-tests.yaml"
    tests.write_text(json.dumps(cases))
    run = subprocess.run(
        [_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_guard_expression_parses_in_promtool(tmp_path: Path) -> None:
    policy = policy_from_catalog(load_kpi_catalog(REPO / "monitoring" / "kpis.yaml"))
    exprs = {"traffic": policy.traffic_expr} | {c.name: c.expr for c in policy.checks}
    groups = [
        {
            "name": "guard-exprs",
            "rules": [
                {"record": f"slipway_guard_expr_{n.replace('-', '_')}", "expr": e}
                for n, e in exprs.items()
            ],
        }
    ]
    rules = tmp_path / "exprs.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run(
        [_promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
