"""Session fixtures of the integration tests: a real Kubernetes API (see tests/support/k8s.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import k8s
from tests.support.k8s_pods import FakeKubelet


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


@pytest.fixture(scope="module")
def logged_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, str]:
    """(tracking URI, model URI, run id): one SQLite store and one tiny logged model per module."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from slipway.registry import mlflow_tracking_uri

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # get_client sets no global: unscoped, the fluent API would write ./mlflow.db in the cwd
    with mlflow_tracking_uri(uri):
        name = request.module.__name__.rsplit(".", 1)[-1]
        experiment = mlflow.create_experiment(name, artifact_location=str(root / "art"))
        with mlflow.start_run(experiment_id=experiment) as run:
            model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return uri, info.model_uri, run.info.run_id
