"""Deploy and rollback without a cluster: a recording fake kubectl injected as the runner of
:class:`Kubectl` (also under the CLI) and a REAL MLflow registry (SQLite in tmp). Proves the
exact kubectl command sequence, that registry, serving, overlay file and audit trail agree
afterwards, that a failure part-way leaves the registry untouched and says how to finish, and
that the resume command finishes it. The real kubectl only renders overlays (``kustomize``).

The same behaviours against a real control plane (real Deployment and ReplicaSet controllers,
real ``kubectl``) are tests/integration/test_release_on_k8s.py; the fake stays here for the
exact command sequences and the states a real cluster cannot be put in on demand.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from slipway.cli.common import console
from slipway.cli.rollout import register
from slipway.config import Settings, load_settings
from slipway.errors import ConfigError, RolloutError
from slipway.packaging.efs import CHAMPION_MARKER, read_champion_marker
from slipway.packaging.store import LocalModelStore
from slipway.packaging.store.s3 import S3ModelStore
from slipway.registry.client import (
    CHAMPION,
    TAG_VERSION_CODE,
    get_alias_version,
    get_client,
    mlflow_tracking_uri,
)
from slipway.release import kubectl as kubectl_module
from slipway.release.audit import read_audit_trail
from slipway.release.deploy import DeployRequest, deploy_version
from slipway.release.kubectl import Kubectl
from slipway.release.overlay import MODEL_VERSION_FILE, set_model_version
from slipway.release.rollback import RollbackRequest, rollback_deployment
from slipway.versions import make_version_code
from tests.support import REPO, mlflow_model
from tests.support.fake_kubectl import FakeKubectl
from tests.support.release_world import cli_env

STATUS = ["rollout", "status", "deployment/slipway-server", "-n", "slipway", "--timeout=5m"]
GET = ["get", "deployment/slipway-server", "-n", "slipway", "-o", "json", "--ignore-not-found"]
CONTEXT = ["config", "current-context"]
UNDO = ["rollout", "undo", "deployment/slipway-server", "-n", "slipway"]
_names = itertools.count(1)
#: One tiny logged model per module (tests/support/mlflow_model.py), a fixture of these tests.
logged_model = mlflow_model.logged_model


@pytest.fixture(scope="module")
def real_kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl is not installed: these tests render overlays with `kubectl kustomize`"
    return found


@dataclass
class World:
    settings: Settings
    client: Any
    fake: FakeKubectl
    manifests: Path
    v1: str
    v2: str

    @property
    def overlay_file(self) -> Path:
        return self.manifests / "overlays" / "prod" / MODEL_VERSION_FILE

    def champion(self) -> str | None:
        found = get_alias_version(self.client, self.settings.model_name, CHAMPION)
        return str(found.version) if found is not None else None

    def version_tags(self, n: int) -> dict[str, str]:
        return self.client.get_model_version(self.settings.model_name, str(n)).tags

    def trail(self):
        return [record for _, record in read_audit_trail(self.client, self.settings.model_name)]

    def kubectl(self) -> Kubectl:
        return Kubectl(namespace=self.settings.namespace, runner=self.fake)

    def marker(self) -> dict[str, Any] | None:
        """The champion marker efs-sync retention reads (``<store>/<model>/champion.json``)."""
        path = Path(self.settings.model_store_url) / self.settings.model_name / CHAMPION_MARKER
        return json.loads(path.read_bytes()) if path.is_file() else None

    def marker_names(self) -> tuple[str, int]:
        marker = self.marker()
        assert marker is not None, "no champion marker in the model store"
        store = LocalModelStore(Path(self.settings.model_store_url))
        assert read_champion_marker(store, self.settings.model_name) == marker["version_code"]
        return marker["version_code"], marker["registry_version"]


def _pinned(path: Path) -> str:
    doc = yaml.safe_load(path.read_text())
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    (version,) = [e["value"] for e in container["env"] if e["name"] == "MODEL_VERSION"]
    return version


@pytest.fixture
def world(tmp_path: Path, logged_model: tuple[str, str, str], real_kubectl: str) -> World:
    """A registered model with versions 1 and 2 (champion: 2), both packaged in the store, prod
    overlay (a copy of manifests/) pinned to v2, fake cluster at revision 2 serving v2."""
    uri, model_uri, run_id = logged_model
    name = f"rollout-{next(_names)}"
    settings = load_settings(
        state_dir=tmp_path / "state",
        project_dir=REPO,
        tracking_uri=uri,
        model_name=name,
        model_store_url=str(tmp_path / "store"),
        efs_root=tmp_path / "efs-not-mounted",
        git_commit="test",
    )
    client = get_client(uri)
    client.create_registered_model(name)
    store = LocalModelStore(tmp_path / "store")
    codes = []
    for n in (1, 2):
        with mlflow_tracking_uri(uri):  # the registry looks the logged model up globally
            version = client.create_model_version(name, model_uri, run_id=run_id)
        assert str(version.version) == str(n)
        code = make_version_code(n, run_id)
        client.set_model_version_tag(name, str(n), TAG_VERSION_CODE, code)
        store.put_package(name, code, {"model.skops": b"x", "manifest.json": b"{}"})
        codes.append(code)
    client.set_registered_model_alias(name, CHAMPION, "2")
    manifests = Path(shutil.copytree(REPO / "manifests", tmp_path / "manifests"))
    set_model_version(manifests / "overlays" / "prod", codes[1], f"deploy model {codes[1]}")
    revisions = [
        {"revision": n, "version": code, "cause": f"deploy model {code}"}
        for n, code in zip((1, 2), codes, strict=True)
    ]
    state = {"context": "test-cluster", "revisions": revisions, "current": 2}
    fake = FakeKubectl(state, real_kubectl)
    return World(settings, client, fake, manifests, codes[0], codes[1])


def _rollback(world: World, **kwargs: Any):
    request = RollbackRequest(
        env="prod",
        manifests_root=world.manifests,
        actor="alice <alice@example.com>",
        **{"reason": "p95 latency doubled", **kwargs},
    )
    return rollback_deployment(
        world.settings, request, kubectl=world.kubectl(), client=world.client
    )


def test_rollback_runs_kubectl_in_order_and_registry_serving_audit_agree(world: World) -> None:
    result = _rollback(world)

    assert world.fake.calls() == [CONTEXT, GET, UNDO, STATUS, GET]
    assert world.fake.served() == (3, world.v1)  # v1's template back, renumbered to revision 3
    assert (result.from_version, result.served.version, result.served.revision) == (
        world.v2,
        world.v1,
        3,
    )
    assert world.champion() == "1"
    assert result.sync.alias_before == "2"
    # efs-sync retention now protects the restored version, not the withdrawn one
    assert world.marker_names() == (world.v1, 1)
    assert result.sync.marker == str(
        Path(world.settings.model_store_url) / world.settings.model_name / CHAMPION_MARKER
    )
    assert {k: world.version_tags(1)[k] for k in ("rolled_back_from", TAG_VERSION_CODE)} == {
        "rolled_back_from": world.v2,
        TAG_VERSION_CODE: world.v1,
    }
    assert world.version_tags(2)["withdrawn_reason"] == "p95 latency doubled"
    assert world.version_tags(2)["withdrawn_at"] == world.version_tags(1)["rolled_back_at"]
    (record,) = world.trail()
    assert (record.action, record.actor, record.from_version, record.to_version) == (
        "rollback",
        "alice <alice@example.com>",
        world.v2,
        world.v1,
    )
    assert (record.revision, record.env, record.context, record.registry_version) == (
        3,
        "prod",
        "test-cluster",
        "1",
    )
    assert record.reason == "p95 latency doubled"
    assert record.at.endswith("Z")
    # the overlay now pins what the cluster serves, with the live template's own cause
    assert _pinned(world.overlay_file) == world.v1
    assert f"deploy model {world.v1}" in world.overlay_file.read_text()


def test_rollback_to_revision_passes_the_flag(world: World) -> None:
    world.fake.set_state(
        revisions=[*world.fake.state()["revisions"], _rev(3, "v3-20261129-0a1b2c3d")], current=3
    )
    result = _rollback(world, to_revision=1)
    assert world.fake.calls()[2] == [*UNDO, "--to-revision=1"]
    assert (result.from_version, result.served.version) == ("v3-20261129-0a1b2c3d", world.v1)
    assert world.fake.served() == (4, world.v1)
    (record,) = world.trail()  # v3 was never registered: nothing to tag, still audited
    assert (record.from_version, record.to_version, record.revision) == (
        "v3-20261129-0a1b2c3d",
        world.v1,
        4,
    )


def _rev(n: int, code: str) -> dict[str, Any]:
    return {"revision": n, "version": code, "cause": f"deploy model {code}"}


def test_failed_rollout_status_leaves_registry_untouched_and_resume_finishes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay_before = world.overlay_file.read_bytes()
    world.fake.set_state(
        fail={"rollout status": 'error: deployment "slipway-server" exceeded its progress deadline'}
    )
    with pytest.raises(RolloutError, match="did not finish") as caught:
        _rollback(world)
    message = str(caught.value)
    assert f"from {world.v2} to {world.v1}" in message
    assert "exceeded its progress deadline" in message
    assert "still points at the old champion and no audit record was written" in message
    resume = (
        f"slipway rollback --sync-registry-only --env prod --from {world.v2} --record-as "
        "rollback --reason 'p95 latency doubled'"
    )
    assert resume in message
    assert world.fake.calls() == [CONTEXT, GET, UNDO, STATUS, GET]
    # registry, tags, audit trail and overlay file untouched
    assert world.champion() == "2"
    assert "rolled_back_from" not in world.version_tags(1)
    assert "withdrawn_at" not in world.version_tags(2)
    assert world.trail() == []
    assert world.overlay_file.read_bytes() == overlay_before
    assert world.marker() is None  # the fixture wrote none; the rollback did not either

    # the rollout finishes later; the printed command, run as printed, finishes the job
    world.fake.set_state(fail={})
    argv = shlex.split(resume)[1:]  # as a shell would split the printed command
    result = _run_cli(world, monkeypatch, [*argv, "--actor", "bob"])
    assert result.exit_code == 0, result.output
    assert world.fake.calls()[5:] == [CONTEXT, GET]  # no second undo
    assert world.champion() == "1"
    assert world.marker_names() == (world.v1, 1)
    assert world.version_tags(1)["rolled_back_from"] == world.v2
    (record,) = world.trail()
    assert (record.action, record.from_version, record.to_version, record.revision) == (
        "rollback",
        world.v2,
        world.v1,
        3,
    )
    assert _pinned(world.overlay_file) == world.v1

    assert world.version_tags(1)["rolled_back_at"] == record.at
    assert world.version_tags(2)["withdrawn_at"] == record.at
    tags_before = (world.version_tags(1), world.version_tags(2))

    # running it again records nothing twice and leaves the rollback tags as recorded
    again = _run_cli(world, monkeypatch, [*argv, "--actor", "bob"])
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.output
    assert len(world.trail()) == 1
    assert (world.version_tags(1), world.version_tags(2)) == tags_before
    assert world.version_tags(2)["withdrawn_at"] == world.trail()[0].at


def test_rollback_to_an_unregistered_version_says_what_is_left(world: World) -> None:
    world.fake.set_state(
        revisions=[_rev(1, "v9-20261101-deadbeef"), *world.fake.state()["revisions"][1:]]
    )
    with pytest.raises(RolloutError, match="was not moved") as caught:
        _rollback(world)
    message = str(caught.value)
    assert "Deployment slipway-server serves v9-20261101-deadbeef" in message
    assert "it points at version 2" in message
    assert "--sync-registry-only" in message
    assert world.champion() == "2"
    assert world.trail() == []


def test_rollback_whose_template_pins_no_valid_version_is_not_synced(world: World) -> None:
    revisions = world.fake.state()["revisions"]
    revisions[0]["env_version"] = "v9-latest"  # MODEL_VERSION is not a version code
    world.fake.set_state(revisions=revisions)
    with pytest.raises(RolloutError, match="reading back what the Deployment serves failed") as e:
        _rollback(world)
    assert "does not pin one model version" in str(e.value)
    assert "'v9-latest' is not a model version code" in str(e.value)
    assert world.fake.calls() == [CONTEXT, GET, UNDO, STATUS, GET]
    assert world.champion() == "2"
    assert world.trail() == []


def test_rollback_without_a_context_changes_nothing(world: World) -> None:
    world.fake.set_state(context=None)
    with pytest.raises(RolloutError, match="no kubectl context is configured"):
        _rollback(world)
    assert world.fake.calls() == [CONTEXT]
    assert world.champion() == "2"
    assert world.fake.served() == (2, world.v2)


def test_rollback_without_history_changes_nothing(world: World) -> None:
    world.fake.set_state(revisions=[_rev(2, world.v2)])
    with pytest.raises(Exception, match="no rollout history found") as caught:
        _rollback(world)
    assert f"Nothing was changed: the Deployment still serves {world.v2}" in str(caught.value)
    assert world.fake.calls() == [CONTEXT, GET, UNDO]
    assert world.champion() == "2"


@pytest.mark.integration  # the S3 model store is the moto server process
def test_rollback_with_the_store_on_s3_writes_the_marker_there_or_says_what_is_left(
    world: World, aws_env: str
) -> None:
    """Production shape: the marker lives in the S3 model store. While the bucket is missing
    the rollback stops after moving the alias and says so; the resume command finishes it."""
    bucket = f"rollout-marker-{world.settings.model_name}"
    settings = world.settings.model_copy(
        update={"model_store_url": f"s3://{bucket}/models", "aws_endpoint_url": aws_env}
    )
    s3_world = World(settings, world.client, world.fake, world.manifests, world.v1, world.v2)

    with pytest.raises(RolloutError, match="champion marker in the model store") as caught:
        _rollback(s3_world)
    message = str(caught.value)
    assert f"Deployment slipway-server serves {world.v1}" in message
    assert "'champion' points at registry version 1" in message
    assert f"s3://{bucket}/models was not rewritten to name {world.v1}" in message
    assert "no audit record was written" in message
    assert bucket in message  # the store's own error: which bucket
    resume = (
        f"slipway rollback --sync-registry-only --env prod --from {world.v2} --record-as "
        "rollback --reason 'p95 latency doubled'"
    )
    assert resume in message
    assert world.champion() == "1"  # the alias moved; the state the message describes
    assert world.trail() == []
    assert world.fake.served() == (3, world.v1)

    import boto3

    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    result = _rollback(s3_world, sync_only=True, from_version=world.v2, record_as="rollback")
    assert result.sync.marker == f"s3://{bucket}/models/{world.settings.model_name}/champion.json"
    store = S3ModelStore.from_url(settings.model_store_url, endpoint_url=aws_env)
    assert read_champion_marker(store, world.settings.model_name) == world.v1
    body = json.loads(store.read_marker(world.settings.model_name, CHAMPION_MARKER))
    assert (body["version_code"], body["registry_version"]) == (world.v1, 1)
    (record,) = world.trail()
    assert (record.action, record.from_version, record.to_version) == (
        "rollback",
        world.v2,
        world.v1,
    )


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def _deploy(world: World, version: str, **kwargs: Any):
    request = DeployRequest(
        version=version, env="prod", manifests_root=world.manifests, actor="carol", **kwargs
    )
    return deploy_version(world.settings, request, kubectl=world.kubectl(), client=world.client)


def test_deploy_applies_waits_and_moves_the_alias(world: World) -> None:
    world.fake.set_state(revisions=[_rev(1, world.v1)], current=1)
    world.client.set_registered_model_alias(world.settings.model_name, CHAMPION, "1")
    set_model_version(world.overlay_file.parent, world.v1, f"deploy model {world.v1}")
    result = _deploy(world, world.v2, cause="weekly retrain")

    overlay = str(world.manifests / "overlays" / "prod")
    assert world.fake.calls() == [CONTEXT, GET, ["apply", "-k", overlay], STATUS, GET]
    assert world.fake.served() == (2, world.v2)
    assert _pinned(world.overlay_file) == world.v2
    assert "+          value: " + world.v2 in result.diff  # env MODEL_VERSION
    assert world.champion() == "2"
    assert world.marker_names() == (world.v2, 2)
    (record,) = world.trail()
    assert (record.action, record.from_version, record.to_version, record.reason) == (
        "deploy",
        world.v1,
        world.v2,
        "weekly retrain",
    )
    assert (record.revision, record.actor) == (2, "carol")


def test_deploy_refuses_a_version_not_in_the_store(world: World) -> None:
    before = _tree_digest(world.manifests)
    with pytest.raises(RolloutError, match="model version v7-20261128-0a1b2c3d is not in") as e:
        _deploy(world, "v7-20261128-0a1b2c3d")
    assert "promote it" in str(e.value)
    assert world.v1 in str(e.value)  # lists the known versions
    assert _tree_digest(world.manifests) == before
    assert world.fake.calls(include_kustomize=True) == []


def test_deploy_refuses_a_malformed_version_code(world: World) -> None:
    with pytest.raises(ConfigError, match="'v2-latest' is not a model version code"):
        _deploy(world, "v2-latest")
    assert world.fake.calls(include_kustomize=True) == []


def test_deploy_refuses_a_version_missing_from_mounted_efs(world: World) -> None:
    efs = world.settings.efs_root
    (efs / world.settings.model_name / world.v2).mkdir(parents=True)  # EFS mounted, v2 not synced
    with pytest.raises(RolloutError, match=f"{world.v1} is in the store but not on EFS"):
        _deploy(world, world.v1)
    assert world.fake.calls(include_kustomize=True) == []


def test_deploy_dry_run_prints_the_diff_and_changes_nothing(world: World) -> None:
    before = _tree_digest(world.manifests)
    result = _deploy(world, world.v1, dry_run=True)
    assert result.overlay_file is None
    assert (result.from_version, result.to_version) == (world.v2, world.v1)
    changed = [
        line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"
    ]
    assert changed  # only version lines change in the rendered manifests
    assert all(world.v1 in line or world.v2 in line for line in changed), changed
    assert f"-          value: {world.v2}" in changed  # env MODEL_VERSION
    assert f"+          value: {world.v1}" in changed
    assert _tree_digest(world.manifests) == before
    assert world.fake.calls() == []  # renders only: no context, no apply
    assert world.champion() == "2"
    assert world.trail() == []


def test_deploy_without_a_context_only_writes_the_overlay(world: World) -> None:
    world.fake.set_state(context=None)
    result = _deploy(world, world.v1)
    assert result.context is None
    assert result.overlay_file == world.overlay_file
    assert _pinned(world.overlay_file) == world.v1
    assert world.fake.calls() == [CONTEXT]
    assert world.champion() == "2"
    assert world.trail() == []
    assert world.marker() is None


def test_deploy_whose_rollout_fails_leaves_the_registry_and_says_how_to_finish(
    world: World,
) -> None:
    world.fake.set_state(revisions=[_rev(1, world.v1)], current=1, fail={"rollout status": "boom"})
    world.client.set_registered_model_alias(world.settings.model_name, CHAMPION, "1")
    with pytest.raises(RolloutError, match=r"rollout did not finish: .*boom") as caught:
        _deploy(world, world.v2)
    message = str(caught.value)
    assert "registry alias 'champion' and the audit trail are untouched" in message
    assert f"--from {world.v1} --record-as deploy" in message
    assert "slipway rollback --env prod" in message
    assert world.champion() == "1"
    assert world.trail() == []
    assert world.marker() is None


def _run_cli(world: World, monkeypatch: pytest.MonkeyPatch, argv: list[str]):
    """Run the CLI verbs with the fake kubectl as the default runner and the world's settings."""
    monkeypatch.setattr(kubectl_module, "run_subprocess", world.fake)
    env = cli_env(world.settings)
    app = typer.Typer()
    register(app)
    if argv[0] in ("deploy", "rollback"):
        argv = [*argv, "--manifests", str(world.manifests)]
    return CliRunner().invoke(app, argv, env=env)


def test_cli_deploy_rollback_and_audit_table(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_cli(world, monkeypatch, ["deploy", "--version", world.v1, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert world.fake.calls() == []

    result = _run_cli(world, monkeypatch, ["rollback", "--reason", "bad canary", "--actor", "dave"])
    assert result.exit_code == 0, result.output
    assert f"serves {world.v1}" in result.output
    assert world.champion() == "1"
    assert world.marker_names() == (world.v1, 1)

    result = _run_cli(world, monkeypatch, ["audit", "--json"])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    assert json.loads(line)["reason"] == "bad canary"
    monkeypatch.setattr(console, "width", 200)  # CliRunner is no terminal: rich assumes 80
    table = _run_cli(world, monkeypatch, ["audit"])
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if "bad canary" in line)
    assert "rollback" in row
    assert "dave" in row
    assert world.v1 in table.output


def test_cli_refusal_is_one_sentence(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_cli(world, monkeypatch, ["deploy", "--version", "v8-20261128-0a1b2c3d"])
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "model version v8-20261128-0a1b2c3d is not in the model store" in result.output
    assert "Traceback" not in result.output


def test_first_deploy_to_a_cluster_without_the_deployment(world: World) -> None:
    world.fake.set_state(revisions=[], current=None)
    result = _deploy(world, world.v1)
    overlay = str(world.manifests / "overlays" / "prod")
    assert world.fake.calls() == [CONTEXT, GET, ["apply", "-k", overlay], STATUS, GET]
    assert result.from_version is None
    assert world.fake.served() == (1, world.v1)
    assert world.champion() == "1"
    (record,) = world.trail()
    assert (record.action, record.from_version, record.to_version) == ("deploy", None, world.v1)


def test_deploy_looks_the_registry_version_up_once(world: World) -> None:
    searches: list[str] = []
    search = world.client.search_model_versions

    def counted(filter_string: str, *args: Any, **kwargs: Any) -> Any:
        searches.append(filter_string)
        return search(filter_string, *args, **kwargs)

    world.client.search_model_versions = counted
    _deploy(world, world.v1)
    assert searches == [
        f"name='{world.settings.model_name}' and tags.{TAG_VERSION_CODE}='{world.v1}'"
    ]
    assert world.champion() == "1"
