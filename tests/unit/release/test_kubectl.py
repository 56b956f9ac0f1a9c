"""The kubectl runner with the in-process fake injected: exact argv, absence as an answer, and
every failure as one sentence (no cluster, no subprocess)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from slipway.errors import KubectlError, KubectlNotFoundError
from slipway.release.kubectl import Kubectl, served_version
from slipway.versions import VersionCode
from tests.support.fake_kubectl import FakeKubectl

V1, V2 = "v1-20261127-0a1b2c3d", "v2-20261128-0a1b2c3d"
GET = ["get", "deployment/slipway-server", "-n", "slipway", "-o", "json", "--ignore-not-found"]


def _fake(**state: object) -> FakeKubectl:
    revisions = [
        {"revision": n, "version": code, "cause": f"deploy model {code}"}
        for n, code in ((1, V1), (2, V2))
    ]
    return FakeKubectl({"context": "test", "revisions": revisions, "current": 2, **state})


def test_undo_and_read_back_run_the_exact_commands() -> None:
    fake = _fake()
    kubectl = Kubectl(namespace="slipway", runner=fake)
    assert kubectl.current_context() == "test"
    before = served_version(kubectl.get_deployment())
    kubectl.rollout_undo()
    kubectl.rollout_status(timeout="90s")
    after = served_version(kubectl.get_deployment())
    assert fake.calls() == [
        ["config", "current-context"],
        GET,
        ["rollout", "undo", "deployment/slipway-server", "-n", "slipway"],
        ["rollout", "status", "deployment/slipway-server", "-n", "slipway", "--timeout=90s"],
        GET,
    ]
    assert (before.version, before.revision) == (V2, 2)
    assert (after.version, after.revision, after.cause) == (V1, 3, f"deploy model {V1}")
    assert isinstance(after.version, VersionCode)
    assert fake.served() == (3, V1)


def test_the_namespace_is_the_one_given() -> None:
    fake = _fake()
    Kubectl(namespace="ml-prod", runner=fake).rollout_undo(to_revision=1)
    assert fake.calls() == [
        ["rollout", "undo", "deployment/slipway-server", "-n", "ml-prod", "--to-revision=1"]
    ]


def test_a_missing_deployment_is_an_answer_not_an_error() -> None:
    kubectl = Kubectl(namespace="slipway", runner=_fake(revisions=[], current=None))
    assert kubectl.find_deployment() is None
    with pytest.raises(KubectlError, match="not found in namespace slipway") as caught:
        kubectl.get_deployment()
    assert "SLIPWAY_NAMESPACE" in str(caught.value)


def test_a_failing_command_names_itself_its_exit_code_and_stderr() -> None:
    fake = _fake(fail={"rollout status": "error: exceeded its progress deadline"})
    kubectl = Kubectl(namespace="slipway", runner=fake)
    with pytest.raises(KubectlError) as caught:
        kubectl.rollout_status()
    assert str(caught.value) == (
        "`kubectl rollout status deployment/slipway-server -n slipway --timeout=5m` failed "
        "(exit 1): error: exceeded its progress deadline"
    )


def test_no_context_is_none_but_no_kubectl_is_an_error() -> None:
    assert Kubectl(namespace="slipway", runner=_fake(context=None)).current_context() is None

    def missing(argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    kubectl = Kubectl("/opt/no/kubectl", namespace="slipway", runner=missing)
    with pytest.raises(KubectlNotFoundError, match="kubectl not found") as caught:
        kubectl.current_context()
    assert "'/opt/no/kubectl'" in str(caught.value)
    assert "--kubectl" in str(caught.value)


def test_a_runner_that_times_out_is_one_sentence() -> None:
    def hangs(argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(list(argv), timeout)

    kubectl = Kubectl(namespace="slipway", timeout_s=7, runner=hangs)
    with pytest.raises(KubectlError, match=r"did not finish within 7 s") as caught:
        kubectl.get_deployment()
    assert "kubectl cluster-info" in str(caught.value)


def test_a_template_that_pins_no_valid_version_is_refused() -> None:
    revisions = [{"revision": 1, "version": V1, "cause": "x", "env_version": "latest"}]
    kubectl = Kubectl(namespace="slipway", runner=_fake(revisions=revisions, current=1))
    with pytest.raises(KubectlError, match="does not pin one model version") as caught:
        served_version(kubectl.get_deployment())
    assert "'latest' is not a model version code" in str(caught.value)
