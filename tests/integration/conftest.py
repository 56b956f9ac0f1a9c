"""Session fixtures of the integration tests: a real Kubernetes API (see tests/support/k8s.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import k8s
from tests.support.k8s_pods import FakeKubelet
from tests.support.mlflow_model import logged_model  # noqa: F401 - a fixture of these tests


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[k8s.Cluster]:
    """A real Kubernetes API for the session: etcd + kube-apiserver + kube-controller-manager.

    Or the disposable cluster of ``SLIPWAY_TEST_KUBECONFIG`` (nothing is started then). Fails
    with the missing piece and how to get it when neither can be had.
    """
    folder = tmp_path_factory.mktemp("k8s")
    try:
        context = k8s.cluster_from_env(folder)
        cluster = context.__enter__()
    except (k8s.K8sUnavailable, k8s.K8sStartError) as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield cluster
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def k8s_pods(k8s_cluster: k8s.Cluster) -> Iterator[FakeKubelet]:
    """A fake kubelet: pending pods are bound to a Ready node and reported Ready (kwok-style).

    ``with k8s_pods.keep_unready(namespace=..., labels=...):`` keeps chosen pods unready.
    """
    kubelet = FakeKubelet(k8s_cluster).start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
