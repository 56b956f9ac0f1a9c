"""The release world on a real control plane: a model with registered versions, a store, and a
namespace of its own whose prod overlay's dependencies are applied (no Deployment yet).

Shared by tests/integration/test_release_on_k8s.py (deploy and rollback) and
tests/integration/test_guard_on_k8s.py (the guard rolls back through the same path): the
``world`` fixture needs ``logged_model`` (tests/support/mlflow_model.py), ``k8s_cluster`` and
``k8s_pods`` (tests/integration/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from slipway.cli.rollout import register
from slipway.config import Settings, load_settings
from slipway.packaging.efs import CHAMPION_MARKER, read_champion_marker
from slipway.packaging.store import LocalModelStore
from slipway.registry.client import (
    CHAMPION,
    TAG_VERSION_CODE,
    get_alias_version,
    get_client,
    mlflow_tracking_uri,
)
from slipway.release.audit import AuditRecord, read_audit_trail
from slipway.release.deploy import DeployRequest, deploy_version
from slipway.release.kubectl import Kubectl
from slipway.release.names import DEPLOYMENT, REVISION_ANNOTATION
from slipway.release.overlay import MODEL_VERSION_FILE
from slipway.versions import make_version_code
from tests.support import REPO
from tests.support.k8s import Cluster, ensure_namespace
from tests.support.k8s_pods import FakeKubelet

ENV = "prod"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
#: Rollouts of 3 replicas with the fake kubelet take 2-4 s; this only bounds a broken run.
TIMEOUT = "60s"
VERSIONS = 4
_names = itertools.count(1)


@dataclass
class World:
    """One model with registered versions 1..4 (``codes[0..3]``) and a namespace of its own."""

    cluster: Cluster
    settings: Settings
    client: Any
    manifests: Path
    codes: list[str]

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def overlay_file(self) -> Path:
        return self.manifests / "overlays" / ENV / MODEL_VERSION_FILE

    # -------------------------------------------------------------- the cluster

    def deployment(self) -> dict[str, Any]:
        out = self.cluster.kubectl(
            "get", f"deployment/{DEPLOYMENT}", "-n", self.namespace, "-o", "json"
        ).stdout
        return json.loads(out)

    def served(self) -> tuple[int, str]:
        """(revision, MODEL_VERSION of the server container) of the live Deployment."""
        live = self.deployment()
        (server,) = [
            c for c in live["spec"]["template"]["spec"]["containers"] if c["name"] == "server"
        ]
        (version,) = [e["value"] for e in server["env"] if e["name"] == "MODEL_VERSION"]
        return int(live["metadata"]["annotations"][REVISION_ANNOTATION]), version

    def history(self) -> dict[int, str]:
        """``kubectl rollout history``: revision -> CHANGE-CAUSE, as printed."""
        out = self.cluster.kubectl(
            "rollout", "history", f"deployment/{DEPLOYMENT}", "-n", self.namespace
        ).stdout
        rows = [line.split(None, 1) for line in out.splitlines()[2:] if line.strip()]
        return {int(row[0]): (row[1].strip() if len(row) > 1 else "") for row in rows}

    def rollout_status(self, timeout: str = TIMEOUT) -> None:
        self.cluster.kubectl(
            "rollout", "status", f"deployment/{DEPLOYMENT}", "-n", self.namespace,
            f"--timeout={timeout}", timeout=float(timeout.rstrip("s")) + 20,
        )  # fmt: skip

    def ready_pods_serve(self, version: str) -> bool:
        out = self.cluster.kubectl(
            "get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/component=server",
            "-o", "json",
        ).stdout  # fmt: skip
        pods = [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]
        envs = [
            {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])}
            for p in pods
        ]
        return bool(pods) and all(env.get("MODEL_VERSION") == version for env in envs)

    # -------------------------------------------------------------- registry, store, files

    def champion(self) -> str | None:
        found = get_alias_version(self.client, self.settings.model_name, CHAMPION)
        return str(found.version) if found is not None else None

    def trail(self) -> list[AuditRecord]:
        return [record for _, record in read_audit_trail(self.client, self.settings.model_name)]

    def marker(self) -> tuple[str, int] | None:
        """(version code, registry version) of the champion marker in the model store."""
        path = Path(self.settings.model_store_url) / self.settings.model_name / CHAMPION_MARKER
        if not path.is_file():
            return None
        body = json.loads(path.read_bytes())
        store = LocalModelStore(Path(self.settings.model_store_url))
        assert read_champion_marker(store, self.settings.model_name) == body["version_code"]
        return body["version_code"], body["registry_version"]

    def pinned(self) -> str:
        doc = yaml.safe_load(self.overlay_file.read_text())
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        (version,) = [e["value"] for e in container["env"] if e["name"] == "MODEL_VERSION"]
        return version

    def assert_all_serve(self, n: int, revision: int) -> None:
        """Cluster, registry, marker and overlay file all name registered version ``n``."""
        code = self.codes[n - 1]
        assert self.served() == (revision, code)
        assert self.ready_pods_serve(code)
        assert self.champion() == str(n)
        assert self.marker() == (code, n)
        assert self.pinned() == code
        newest = self.trail()[-1]
        assert (newest.to_version, newest.revision, newest.registry_version) == (
            code,
            revision,
            str(n),
        )
        assert newest.context == "slipway-test" or not self.cluster.local

    # -------------------------------------------------------------- the release code

    def kubectl(self) -> Kubectl:
        return Kubectl(namespace=self.namespace)  # the real kubectl, KUBECONFIG set

    def deploy(self, n: int, **kwargs: Any):
        request = DeployRequest(
            version=self.codes[n - 1],
            env=ENV,
            manifests_root=self.manifests,
            actor="carol",
            **{"timeout": TIMEOUT, **kwargs},
        )
        return deploy_version(self.settings, request, kubectl=self.kubectl(), client=self.client)

    def cli(self, *argv: str):
        env = cli_env(self.settings)
        args = list(argv)
        if args[0] in ("deploy", "rollback"):
            args += ["--manifests", str(self.manifests), "--env", ENV, "--actor", "dave"]
            if "--timeout" not in args:
                args += ["--timeout", TIMEOUT]
        app = typer.Typer()
        register(app)
        return CliRunner().invoke(app, args, env=env)


def _dependencies(cluster: Cluster, overlay: Path) -> str:
    """The rendered overlay without its Deployment (``slipway deploy`` creates that)."""
    rendered = cluster.kubectl("kustomize", str(overlay), timeout=30).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "Deployment"]
    assert {"Namespace", "ServiceAccount", "PersistentVolumeClaim"} <= {d["kind"] for d in docs}
    return yaml.safe_dump_all(docs)


@pytest.fixture
def world(
    tmp_path: Path,
    logged_model: tuple[str, str, str],
    k8s_cluster: Cluster,
    k8s_pods: FakeKubelet,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """Registered versions 1..4 packaged in the store, no champion yet; the prod overlay (a copy
    of manifests/ retargeted to a fresh restricted namespace) with its dependencies applied and
    no Deployment yet; ``KUBECONFIG`` naming the test cluster."""
    uri, model_uri, run_id = logged_model
    n = next(_names)
    namespace = f"release-{n}-{uuid.uuid4().hex[:6]}"
    manifests = Path(shutil.copytree(REPO / "manifests", tmp_path / "manifests"))
    base = manifests / "base" / "kustomization.yaml"
    text = base.read_text()
    assert "\nnamespace: slipway\n" in text, f"{base} no longer sets namespace: slipway"
    base.write_text(text.replace("\nnamespace: slipway\n", f"\nnamespace: {namespace}\n"))

    monkeypatch.setenv("KUBECONFIG", str(k8s_cluster.kubeconfig))
    ensure_namespace(k8s_cluster, namespace, RESTRICTED)
    applied = k8s_cluster.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=_dependencies(k8s_cluster, manifests / "overlays" / ENV),
    )
    assert "PodSecurity" not in applied.stderr, applied.stderr

    name = f"release-k8s-{n}"
    settings = load_settings(
        state_dir=tmp_path / "state",
        project_dir=REPO,
        tracking_uri=uri,
        model_name=name,
        model_store_url=str(tmp_path / "store"),
        efs_root=tmp_path / "efs-not-mounted",
        namespace=namespace,
        git_commit="test",
    )
    client = get_client(uri)
    client.create_registered_model(name)
    store = LocalModelStore(tmp_path / "store")
    codes = []
    for version in range(1, VERSIONS + 1):
        with mlflow_tracking_uri(uri):  # the registry looks the logged model up globally
            created = client.create_model_version(name, model_uri, run_id=run_id)
        assert str(created.version) == str(version)
        code = make_version_code(version, run_id)
        client.set_model_version_tag(name, str(version), TAG_VERSION_CODE, code)
        store.put_package(name, code, {"model.skops": b"x", "manifest.json": b"{}"})
        codes.append(code)
    yield World(k8s_cluster, settings, client, manifests, codes)
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def cli_env(s: Any) -> dict[str, str]:
    """The variables a ``slipway`` verb needs to see the world of settings ``s``."""
    return {
        "SLIPWAY_STATE_DIR": str(s.state_dir),
        "SLIPWAY_PROJECT_DIR": str(s.project_dir),
        "SLIPWAY_TRACKING_URI": s.tracking_uri,
        "SLIPWAY_MODEL_NAME": s.model_name,
        "SLIPWAY_MODEL_STORE_URL": s.model_store_url,
        "SLIPWAY_EFS_ROOT": str(s.efs_root),
        "SLIPWAY_NAMESPACE": s.namespace,
        "SLIPWAY_GIT_COMMIT": "test",
    }
