"""Deploy and rollback against a REAL Kubernetes control plane, a real registry and a real store.

``k8s_cluster`` is a real kube-apiserver + kube-controller-manager (the Deployment and ReplicaSet
controllers keep the revisions, prune them and do the rollouts); ``k8s_pods`` plays the kubelet.
The release code runs the real Debian ``kubectl`` (the default runner of :class:`Kubectl`),
pointed at the harness' kubeconfig with ``KUBECONFIG``. The registry is MLflow on SQLite in
tmp with four registered versions (``version_code`` tags), each packaged in a local model store.

Every test gets a copy of ``manifests/`` whose base namespace is renamed to a fresh one, so that
each starts from an empty rollout history; the prod overlay's dependencies (the restricted
Namespace, the ServiceAccount, the PVC, Service, PDB, HPA, NetworkPolicies) are applied
server-side first, and ``slipway deploy`` creates the Deployment itself (first deploy).
After every step, what the live Deployment serves, the ``champion`` alias, the champion marker
in the store, the overlay file and the audit trail must agree; the tests that fail part-way
check that the state is exactly what the error message says.
"""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import time
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
from slipway.errors import RolloutError
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
from slipway.release.names import CHANGE_CAUSE_ANNOTATION, DEPLOYMENT, REVISION_ANNOTATION
from slipway.release.overlay import MODEL_VERSION_FILE
from slipway.versions import make_version_code
from tests.support import REPO
from tests.support.k8s import Cluster, ensure_namespace
from tests.support.k8s_pods import FakeKubelet

pytestmark = pytest.mark.integration

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
        s = self.settings
        env = {
            "SLIPWAY_STATE_DIR": str(s.state_dir),
            "SLIPWAY_PROJECT_DIR": str(s.project_dir),
            "SLIPWAY_TRACKING_URI": s.tracking_uri,
            "SLIPWAY_MODEL_NAME": s.model_name,
            "SLIPWAY_MODEL_STORE_URL": s.model_store_url,
            "SLIPWAY_EFS_ROOT": str(s.efs_root),
            "SLIPWAY_NAMESPACE": s.namespace,
            "SLIPWAY_GIT_COMMIT": "test",
        }
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


def _deployed(world: World, *versions: int) -> None:
    """Deploy the registered ``versions`` in order through the library, each checked."""
    for n in versions:
        result = world.deploy(n)
        assert result.served is not None
        assert result.served.version == world.codes[n - 1]


# --------------------------------------------------------------------------------------------
# tests


def test_deploy_v1_then_v2_then_rollback_keep_cluster_registry_and_audit_in_step(
    world: World,
) -> None:
    v1, v2 = world.codes[:2]
    first = world.cli("deploy", "--version", v1)
    assert first.exit_code == 0, first.output
    assert "deployed" in first.output
    world.assert_all_serve(1, revision=1)
    (record,) = world.trail()
    assert (record.action, record.from_version, record.to_version) == ("deploy", None, v1)

    second = world.cli("deploy", "--version", v2, "--cause", f"weekly retrain {v2}")
    assert second.exit_code == 0, second.output
    world.assert_all_serve(2, revision=2)
    assert (
        world.deployment()["spec"]["template"]["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION]
        == f"weekly retrain {v2}"
    )
    assert world.history() == {1: f"deploy model {v1}", 2: f"weekly retrain {v2}"}
    assert [(r.action, r.from_version, r.to_version, r.actor) for r in world.trail()] == [
        ("deploy", None, v1, "dave"),
        ("deploy", v1, v2, "dave"),
    ]

    back = world.cli("rollback", "--reason", "p95 latency doubled")
    assert back.exit_code == 0, back.output
    assert f"serves {v1}" in back.output
    world.assert_all_serve(1, revision=3)  # revision 1's template, renumbered by the controller
    assert world.history() == {2: f"weekly retrain {v2}", 3: f"deploy model {v1}"}
    assert f"deploy model {v1}" in world.overlay_file.read_text()  # the live template's cause
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.reason) == (
        "rollback",
        v2,
        v1,
        "p95 latency doubled",
    )
    tags = world.client.get_model_version(world.settings.model_name, "1").tags
    assert tags["rolled_back_from"] == v2
    withdrawn = world.client.get_model_version(world.settings.model_name, "2").tags
    assert withdrawn["withdrawn_reason"] == "p95 latency doubled"

    # the overlay file now pins what is served: applying it by hand starts no new revision
    # (kubectl reports the Deployment "configured": its last-applied annotation still named v2)
    world.cluster.kubectl("apply", "-k", str(world.overlay_file.parent))
    world.rollout_status()
    assert world.served() == (3, v1)
    assert world.history() == {2: f"weekly retrain {v2}", 3: f"deploy model {v1}"}


def test_rollback_to_revision_returns_to_that_revision(world: World) -> None:
    v1, _, v3 = world.codes[:3]
    _deployed(world, 1, 2, 3)
    world.assert_all_serve(3, revision=3)

    result = world.cli("rollback", "--to-revision", "1", "--reason", "v2 and v3 both bad")
    assert result.exit_code == 0, result.output
    world.assert_all_serve(1, revision=4)
    assert sorted(world.history()) == [2, 3, 4]
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.revision) == (
        "rollback",
        v3,
        v1,
        4,
    )
    assert (
        world.client.get_model_version(world.settings.model_name, "3").tags["withdrawn_reason"]
        == "v2 and v3 both bad"
    )


def test_hand_typed_undo_then_sync_registry_only_follows_the_cluster(world: World) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1, 2)
    world.cluster.kubectl("rollout", "undo", f"deployment/{DEPLOYMENT}", "-n", world.namespace)
    world.rollout_status()
    assert world.served() == (3, v1)
    # the cluster moved behind slipway's back: registry, marker, overlay and audit still say v2
    assert (world.champion(), world.marker(), world.pinned()) == ("2", (v2, 2), v2)
    assert len(world.trail()) == 2

    result = world.cli("rollback", "--sync-registry-only", "--reason", "undone by hand at 3am")
    assert result.exit_code == 0, result.output
    assert "synced registry" in result.output
    world.assert_all_serve(1, revision=3)
    assert world.served() == (3, v1)  # the cluster was left alone
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.reason) == (
        "sync",
        v2,
        v1,
        "undone by hand at 3am",
    )

    # the same change again (as a rerun of a printed resume command): recorded once
    again = world.cli(
        "rollback", "--sync-registry-only", "--from", v2, "--reason", "undone by hand at 3am"
    )
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.output
    assert len(world.trail()) == 3


def test_deploy_whose_pods_never_get_ready_stops_where_its_message_says(
    world: World, k8s_pods: FakeKubelet
) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1)
    # every pod of the namespace is kept unready (like a failing dependency of the readiness
    # probe): the fake kubelet matches labels, and the only label that tells the new pods apart,
    # pod-template-hash, is known only once the new ReplicaSet exists
    with k8s_pods.keep_unready(namespace=world.namespace):
        with pytest.raises(RolloutError, match="the rollout did not finish") as caught:
            world.deploy(2, timeout="5s")
        message = str(caught.value)
        # what the message says is left: applied (the template pins v2), the overlay file pins
        # v2, registry alias, marker and audit trail untouched
        assert f"{v2} was applied to context" in message
        assert "timed out" in message  # kubectl's own words
        assert "The registry alias 'champion' and the audit trail are untouched" in message
        assert world.served() == (2, v2)
        assert world.pinned() == v2
        assert world.champion() == "1"
        assert world.marker() == (v1, 1)
        assert [r.to_version for r in world.trail()] == [v1]
        status = world.deployment()["status"]
        assert status.get("updatedReplicas", 0) >= 1  # a v2 pod exists but is not Ready
        assert status.get("replicas") == 4  # maxSurge 1, maxUnavailable 0: no v1 pod removed
        resume = (
            f"slipway rollback --sync-registry-only --env {ENV} --from {v1} --record-as deploy "
            f"--reason {shlex.quote(f'deploy model {v2}')}"
        )
        assert f"once it has rolled out run `{resume}`" in message
        assert f"kubectl -n {world.namespace} rollout status deployment/{DEPLOYMENT}" in message

    world.rollout_status()  # the pods got Ready after all
    argv = shlex.split(resume)[1:]
    finished = world.cli(*argv)  # as a shell splits the printed command
    assert finished.exit_code == 0, finished.output
    world.assert_all_serve(2, revision=2)
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.reason) == (
        "deploy",
        v1,
        v2,
        f"deploy model {v2}",
    )
    assert len(world.trail()) == 2


def test_to_revision_of_a_pruned_revision_fails_and_changes_nothing(world: World) -> None:
    v4 = world.codes[3]
    # set in the manifests: a `kubectl patch` of the live object would not last, as the next
    # `kubectl apply -k` of a deploy overwrites it with the manifests' value (10)
    base = world.manifests / "base" / "deployment.yaml"
    text = base.read_text()
    assert "  revisionHistoryLimit: 10 " in text
    base.write_text(text.replace("  revisionHistoryLimit: 10 ", "  revisionHistoryLimit: 2 "))
    _deployed(world, 1, 2, 3, 4)
    assert world.deployment()["spec"]["revisionHistoryLimit"] == 2
    deadline = time.monotonic() + 20
    while sorted(world.history()) != [2, 3, 4]:  # the controller prunes revision 1
        assert time.monotonic() < deadline, f"revision 1 not pruned: {world.history()}"
        time.sleep(0.2)
    world.assert_all_serve(4, revision=4)
    before = (world.overlay_file.read_bytes(), len(world.trail()), world.history())

    result = world.cli("rollback", "--to-revision", "1", "--reason", "back to the first")
    assert result.exit_code == 1, result.output
    assert "revision 1" in result.output  # kubectl's own words: unable to find it
    assert f"Nothing was changed: the Deployment still serves {v4}" in result.output
    assert "Traceback" not in result.output
    world.assert_all_serve(4, revision=4)
    assert (world.overlay_file.read_bytes(), len(world.trail()), world.history()) == before
