"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.support.processes import moto_server

_MLFLOW_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _mlflow_globals() -> tuple[str | None, str | None] | None:
    """MLflow's global tracking and registry URIs as set (``None``: unset), if mlflow is loaded."""
    if "mlflow" not in sys.modules:  # importing mlflow costs ~3 s: never for a test without it
        return None
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


@pytest.fixture(autouse=True)
def isolated_mlflow_uris() -> Iterator[None]:
    """Restore MLflow's global tracking/registry URIs and their env variables after each test.

    ``mlflow.set_tracking_uri`` (also called by ``get_client``) changes process-wide state and
    ``MLFLOW_TRACKING_URI``; a test that sets them must not point the next test at its store.
    """
    saved_env = {key: os.environ.get(key) for key in _MLFLOW_URI_ENV}
    saved = _mlflow_globals()
    yield
    if "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        # mlflow imported during the test: its URIs were unset before
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved or (None, None)
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of a real ``moto_server`` process shared by the session.

    Tests isolate themselves by using their own bucket/table names; credentials are fake.
    """
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as url:
        yield url


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server with fake credentials, and return the endpoint."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    assert os.environ["AWS_ENDPOINT_URL"] == moto_endpoint
    return moto_endpoint
