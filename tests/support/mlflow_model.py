"""A tiny model logged to a fresh MLflow SQLite store: what registry versions are made from.

A fixture module: ``from tests.support.mlflow_model import logged_model`` in a conftest or test
module makes ``logged_model`` available there (tests/integration/conftest.py, and the unit tests
of the release path with the recording fake kubectl).
"""

from __future__ import annotations

import pytest


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
