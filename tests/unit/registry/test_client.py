"""Registry helpers against a real MLflow SQLite store."""

import pytest

from slipway.errors import RegistryError
from slipway.registry.client import (
    champion_version_code,
    find_version_for_run,
    get_alias_version,
    get_client,
    mlflow_tracking_uri,
    move_alias,
    register_version,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    import mlflow
    from sklearn.dummy import DummyClassifier

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = get_client(uri)
    runs = []
    with mlflow_tracking_uri(uri):  # the fluent API logs to the global URI only
        exp = mlflow.create_experiment("t", artifact_location=str(root / "art"))
        for _ in range(2):
            with mlflow.start_run(experiment_id=exp) as run:
                info = mlflow.sklearn.log_model(
                    DummyClassifier().fit([[0], [1]], [0, 1]),
                    name="model",
                    pip_requirements=["scikit-learn"],
                )
            runs.append((run.info.run_id, info.model_uri))
    return client, runs


def test_get_client_leaves_the_global_uris_alone(tmp_path):
    import mlflow

    before = mlflow.get_tracking_uri()
    client = get_client(f"sqlite:///{tmp_path / 'other.db'}")
    assert client.tracking_uri.endswith("other.db")
    assert mlflow.get_tracking_uri() == before


def test_registration_is_idempotent_per_run(registry):
    client, runs = registry
    first = register_version(client, "m1", runs[0][1], runs[0][0])
    again = register_version(client, "m1", runs[0][1], runs[0][0])
    assert str(first.version) == str(again.version) == "1"
    assert str(find_version_for_run(client, "m1", runs[0][0]).version) == "1"
    assert find_version_for_run(client, "m1", "f" * 32) is None


def test_alias_moves_only_from_the_expected_champion(registry):
    client, runs = registry
    v1 = register_version(client, "m2", runs[0][1], runs[0][0])
    v2 = register_version(client, "m2", runs[1][1], runs[1][0])
    assert get_alias_version(client, "m2") is None
    assert get_alias_version(client, "no-such-model") is None
    move_alias(client, "m2", v1.version, expected=None)
    assert str(get_alias_version(client, "m2").version) == str(v1.version)
    # a candidate evaluated when there was no champion must not crown itself now
    with pytest.raises(RegistryError, match="now points at version 1, not None"):
        move_alias(client, "m2", v2.version, expected=None)
    assert str(get_alias_version(client, "m2").version) == str(v1.version)
    move_alias(client, "m2", v2.version, expected=v1.version)
    assert str(get_alias_version(client, "m2").version) == str(v2.version)
    move_alias(client, "m2", v2.version, expected=v1.version)  # already there: no-op
    assert str(get_alias_version(client, "m2").version) == str(v2.version)


def test_champion_needs_a_version_code_tag(registry):
    client, runs = registry
    v = register_version(client, "m3", runs[0][1], runs[0][0])
    assert champion_version_code(client, "m3") is None
    client.set_registered_model_alias("m3", "champion", v.version)
    with pytest.raises(RegistryError, match="has no 'version_code' tag"):
        champion_version_code(client, "m3")
    client.set_model_version_tag("m3", v.version, "version_code", "v1-20261128-abcdef01")
    assert champion_version_code(client, "m3") == (str(v.version), "v1-20261128-abcdef01")
