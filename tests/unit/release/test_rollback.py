"""Unit tests of the pieces of deploy/rollback: the kubectl runner's errors, reading the served
version from a live Deployment, audit records, resume commands (no cluster, no MLflow)."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from slipway.errors import ConfigError, KubectlError
from slipway.release.audit import MAX_VALUE_CHARS, AuditRecord, ReleaseEvent, new_record
from slipway.release.kubectl import Kubectl, parse_duration, served_version
from slipway.release.sync import overlay_dir, resume_command
from slipway.versions import VersionCode
from tests.support import REPO

CODE = "v2-20261128-0a1b2c3d"
NS = "slipway"


def _deployment(code: str, *env_versions: str, revision: str = "7") -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "slipway-server",
            "annotations": {"deployment.kubernetes.io/revision": revision},
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubernetes.io/change-cause": f"deploy model {code}"}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "env": [
                                {"name": "MODEL_ROOT", "value": "/models"},
                                *({"name": "MODEL_VERSION", "value": v} for v in env_versions),
                            ],
                        }
                    ]
                },
            }
        },
    }


def test_served_version_reads_version_revision_and_cause() -> None:
    served = served_version(_deployment(CODE, CODE))
    assert served.version == CODE
    assert (served.version, served.revision, served.cause) == (CODE, 7, f"deploy model {CODE}")


@pytest.mark.parametrize(
    "env_versions", [(), (CODE, "v1-20261127-0a1b2c3d"), ("v1-latest",)], ids=["none", "two", "bad"]
)
def test_served_version_refuses_a_template_that_does_not_pin_one_version(env_versions) -> None:
    with pytest.raises(KubectlError, match="does not pin one model version") as caught:
        served_version(_deployment(CODE, *env_versions))
    assert "MODEL_VERSION" in str(caught.value) or "v1-latest" in str(caught.value)


def test_missing_kubectl_is_one_sentence(tmp_path: Path) -> None:
    kubectl = Kubectl(str(tmp_path / "no-kubectl"), namespace=NS)
    with pytest.raises(KubectlError, match="kubectl not found") as caught:
        kubectl.rollout_undo()
    assert "--kubectl" in str(caught.value)
    with pytest.raises(KubectlError, match="kubectl not found"):
        kubectl.current_context()  # a missing kubectl is not "no cluster configured"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "kubectl"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_failing_kubectl_names_the_command_exit_code_and_stderr(tmp_path: Path) -> None:
    kubectl = Kubectl(_script(tmp_path, "echo 'error: boom' >&2; exit 3"), namespace=NS)
    with pytest.raises(KubectlError) as caught:
        kubectl.rollout_undo(to_revision=4)
    assert str(caught.value) == (
        "`kubectl rollout undo deployment/slipway-server -n slipway --to-revision=4` failed "
        "(exit 3): error: boom"
    )
    assert kubectl.current_context() is None  # exit 1/3 from `config current-context`: no cluster


def test_kubectl_that_hangs_times_out(tmp_path: Path) -> None:
    kubectl = Kubectl(_script(tmp_path, "sleep 5"), namespace=NS, timeout_s=0.3)
    with pytest.raises(KubectlError, match=r"did not finish within 0\.3 s") as caught:
        kubectl.get_deployment()
    assert "kubectl cluster-info" in str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h", 3600)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "0s", "5 m", "-1m", "5d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="is not valid"):
        parse_duration(text)


def test_audit_record_round_trips_and_fits_a_registry_tag() -> None:
    event = ReleaseEvent(
        action="rollback",
        served=VersionCode.parse("v1-20261127-0a1b2c3d"),
        from_version=VersionCode.parse(CODE),
        reason="x" * 10_000 + "\n second line",
        revision=5,
        env="prod",
        context="eks-prod",
        actor="alice <alice@example.com>",
    )
    record = new_record(
        event, registry_version="1", now=datetime(2026, 11, 28, 10, 15, 30, 123456, tzinfo=UTC)
    )
    assert record.at == "2026-11-28T10:15:30.123456Z"
    assert len(record.reason) == 1000
    assert len(record.to_json()) < MAX_VALUE_CHARS
    assert AuditRecord.from_json(record.to_json()) == record
    assert json.loads(record.to_json())["revision"] == 5
    assert (record.from_version, record.to_version) == (CODE, "v1-20261127-0a1b2c3d")
    assert type(record.to_version) is str  # plain text in the registry tag


def test_audit_record_refuses_unknown_action() -> None:
    with pytest.raises(ValueError, match="'undo' is not one of"):
        ReleaseEvent(
            action="undo",
            served=VersionCode.parse(CODE),
            from_version=None,
            reason="",
            revision=None,
            env="dev",
            context=None,
            actor="a",
        )


def test_resume_command_survives_the_shell() -> None:
    command = resume_command("prod", CODE, "it's broken; rm -rf /", "rollback")
    assert shlex.split(command) == [
        "slipway",
        "rollback",
        "--sync-registry-only",
        "--env",
        "prod",
        "--from",
        CODE,
        "--record-as",
        "rollback",
        "--reason",
        "it's broken; rm -rf /",
    ]


def test_overlay_dir_refuses_unknown_env_and_missing_folder(tmp_path: Path) -> None:
    assert overlay_dir(REPO / "manifests", "dev") == REPO / "manifests" / "overlays" / "dev"
    with pytest.raises(ConfigError, match="'staging' is not one of dev, prod"):
        overlay_dir(REPO / "manifests", "staging")
    with pytest.raises(ConfigError, match="no kustomize overlay at"):
        overlay_dir(tmp_path, "prod")
