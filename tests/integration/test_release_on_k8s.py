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

import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.errors import RolloutError, SlipwayError
from slipway.packaging.efs import read_champion_marker
from slipway.packaging.store.s3 import S3ModelStore
from slipway.release.names import CHANGE_CAUSE_ANNOTATION, DEPLOYMENT
from slipway.release.rollback import RollbackRequest, rollback_deployment
from tests.support import release_world
from tests.support.k8s_pods import FakeKubelet
from tests.support.release_world import ENV, TIMEOUT, World

pytestmark = pytest.mark.integration
#: The release world (tests/support/release_world.py), a fixture of these tests.
world = release_world.world


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


# --------------------------------------------------------------------------------------------
# what the recording fake kubectl covered (tests/unit/release/test_release_fake_kubectl.py),
# here against the real controllers and the real kubectl


def _rollback(world: World, **kwargs: Any):
    request = RollbackRequest(
        env=ENV,
        manifests_root=world.manifests,
        actor="alice",
        **{"reason": "p95 latency doubled", "timeout": TIMEOUT, **kwargs},
    )
    return rollback_deployment(
        world.settings, request, kubectl=world.kubectl(), client=world.client
    )


def test_rollback_whose_pods_never_get_ready_leaves_the_registry_and_resume_finishes(
    world: World, k8s_pods: FakeKubelet
) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1, 2)
    with k8s_pods.keep_unready(namespace=world.namespace):
        with pytest.raises(RolloutError, match="did not finish") as caught:
            _rollback(world, timeout="5s")
        message = str(caught.value)
        assert f"from {v2} to {v1}" in message
        assert "still points at the old champion and no audit record was written" in message
        resume = (
            f"slipway rollback --sync-registry-only --env {ENV} --from {v2} --record-as "
            "rollback --reason 'p95 latency doubled'"
        )
        assert resume in message
        # the undo was applied (revision 1's template is back as revision 3); nothing else moved
        assert world.served() == (3, v1)
        assert (world.champion(), world.marker(), world.pinned()) == ("2", (v2, 2), v2)
        assert [r.action for r in world.trail()] == ["deploy", "deploy"]
        tags = world.client.get_model_version(world.settings.model_name, "1").tags
        assert "rolled_back_from" not in tags

    world.rollout_status()  # the pods got Ready after all
    finished = world.cli(*shlex.split(resume)[1:])  # as a shell splits the printed command
    assert finished.exit_code == 0, finished.output
    world.assert_all_serve(1, revision=3)
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.revision) == (
        "rollback",
        v2,
        v1,
        3,
    )
    again = world.cli(*shlex.split(resume)[1:])
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.output
    assert len(world.trail()) == 3


@pytest.mark.parametrize(
    ("pinned", "error", "says"),
    [
        (
            "v9-20261101-deadbeef",
            "was not moved",
            [
                "Deployment slipway-server serves v9-20261101-deadbeef",
                "it points at version 1",
                "--sync-registry-only",
            ],
        ),
        (
            "v9-latest",
            "reading back what the Deployment serves failed",
            ["does not pin one model version", "'v9-latest' is not a model version code"],
        ),
    ],
)
def test_rollback_to_a_revision_the_registry_cannot_follow_says_what_is_left(
    world: World, pinned: str, error: str, says: list[str]
) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1)

    def set_version(version: str) -> None:  # a hand-made revision, as `kubectl set env` makes
        world.cluster.kubectl(
            "set", "env", f"deployment/{DEPLOYMENT}", "-n", world.namespace, "-c", "server",
            f"MODEL_VERSION={version}",
        )  # fmt: skip
        world.rollout_status()

    set_version(pinned)  # revision 2: a version the registry does not know, or no version code
    set_version(v2)  # revision 3
    with pytest.raises(RolloutError, match=error) as caught:
        _rollback(world, to_revision=2)
    for words in says:
        assert words in str(caught.value)
    assert world.served() == (4, pinned)  # the undo happened: revision 2's template is back
    assert world.champion() == "1"
    assert world.marker() == (v1, 1)
    assert [r.action for r in world.trail()] == ["deploy"]


def test_rollback_with_the_store_on_s3_writes_the_marker_there_or_says_what_is_left(
    world: World, aws_env: str
) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1, 2)
    bucket = f"release-marker-{world.namespace}"
    settings = world.settings.model_copy(
        update={"model_store_url": f"s3://{bucket}/models", "aws_endpoint_url": aws_env}
    )
    request = RollbackRequest(
        env=ENV, manifests_root=world.manifests, actor="alice", reason="bad", timeout=TIMEOUT
    )
    with pytest.raises(RolloutError, match="champion marker in the model store") as caught:
        rollback_deployment(settings, request, kubectl=world.kubectl(), client=world.client)
    message = str(caught.value)
    assert f"Deployment slipway-server serves {v1}" in message
    assert "'champion' points at registry version 1" in message
    assert f"s3://{bucket}/models was not rewritten to name {v1}" in message
    assert "no audit record was written" in message
    assert world.served() == (3, v1)
    assert world.champion() == "1"  # the alias moved: the state the message describes
    assert [r.action for r in world.trail()] == ["deploy", "deploy"]

    import boto3

    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    resume = replace(request, sync_only=True, from_version=v2, record_as="rollback")
    result = rollback_deployment(settings, resume, kubectl=world.kubectl(), client=world.client)
    assert result.sync.marker == f"s3://{bucket}/models/{world.settings.model_name}/champion.json"
    store = S3ModelStore.from_url(settings.model_store_url, endpoint_url=aws_env)
    assert read_champion_marker(store, world.settings.model_name) == v1
    record = world.trail()[-1]
    assert (record.action, record.from_version, record.to_version, record.revision) == (
        "rollback",
        v2,
        v1,
        3,
    )


def test_without_a_kubectl_context_rollback_changes_nothing_and_deploy_only_writes_the_overlay(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    v1, v2 = world.codes[:2]
    _deployed(world, 1, 2)
    config = yaml.safe_load(world.cluster.kubeconfig.read_text())
    config.pop("current-context", None)
    contextless = tmp_path / "no-context.kubeconfig"
    contextless.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(contextless))  # what the release code's kubectl reads
    with pytest.raises(RolloutError, match="no kubectl context is configured"):
        _rollback(world)
    assert world.served() == (2, v2)  # world.cluster.kubectl names its own kubeconfig
    assert world.champion() == "2"
    assert len(world.trail()) == 2

    result = world.deploy(1)
    assert result.context is None
    assert world.pinned() == v1  # the overlay file is written for a later `kubectl apply -k`
    assert world.served() == (2, v2)
    assert world.champion() == "2"
    assert len(world.trail()) == 2


def test_rollback_of_a_deployment_without_history_changes_nothing(world: World) -> None:
    v1 = world.codes[0]
    _deployed(world, 1)
    with pytest.raises(SlipwayError, match="no rollout history found") as caught:
        _rollback(world)
    assert f"Nothing was changed: the Deployment still serves {v1}" in str(caught.value)
    world.assert_all_serve(1, revision=1)
    assert len(world.trail()) == 1
