"""Settings and params.yaml parsing: defaults, derivation and clear errors."""

import pytest

from slipway.config import load_settings
from slipway.errors import ConfigError
from slipway.params import load_params, parse_params
from tests.support import REPO

PROJECT = REPO


def test_defaults_live_under_the_state_dir(tmp_path):
    s = load_settings(state_dir=tmp_path / "st", project_dir=PROJECT)
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'st' / 'mlflow.db'}"
    assert s.model_store_url == str(tmp_path / "st" / "store" / "models")
    assert s.efs_root == tmp_path / "st" / "efs"
    assert s.dvc_remote_url == str(tmp_path / "st" / "dvc-remote")
    assert s.dvc_repo == str(PROJECT)


def test_production_differs_only_by_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "http://mlflow.mlflow:5000")
    monkeypatch.setenv("SLIPWAY_MODEL_STORE_URL", "s3://acme-ml/models")
    s = load_settings(state_dir=tmp_path)
    assert s.tracking_uri == "http://mlflow.mlflow:5000"
    assert s.model_store_url == "s3://acme-ml/models"
    env = s.as_env()
    assert env["SLIPWAY_MODEL_STORE_URL"] == "s3://acme-ml/models"
    assert load_settings(**{k.removeprefix("SLIPWAY_").lower(): v for k, v in env.items()}) == s


def test_bad_setting_names_the_variable_and_value(monkeypatch):
    monkeypatch.setenv("SLIPWAY_EFS_KEEP_VERSIONS", "zero")
    with pytest.raises(ConfigError, match="SLIPWAY_EFS_KEEP_VERSIONS='zero'") as info:
        load_settings()
    assert "integer" in str(info.value)


def test_unknown_model_name_pattern_is_refused():
    with pytest.raises(ConfigError, match="SLIPWAY_MODEL_NAME='Bad Name'"):
        load_settings(model_name="Bad Name")


def test_component_image_comes_from_configuration():
    s = load_settings(image_registry="123.dkr.ecr.eu-west-1.amazonaws.com/", image_tag="abc123")
    assert s.component_image == "123.dkr.ecr.eu-west-1.amazonaws.com/slipway-components:abc123"
    assert s.server_image.endswith("slipway-server:abc123")


def test_project_params_file_is_valid():
    params = load_params(PROJECT / "params.yaml")
    assert {c.estimator for c in params.search.candidates} >= {
        "logistic_regression",
        "random_forest",
    }
    assert params.evaluate.primary_metric == "roc_auc"
    assert params.evaluate.min_delta > 0


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"search": {"candidates": []}}, "search.candidates"),
        ({"search": {"candidates": [{"estimator": "svm"}]}}, "search.candidates.0.estimator='svm'"),
        (
            {"search": {"cv_folds": 1, "candidates": [{"estimator": "random_forest"}]}},
            "search.cv_folds=1",
        ),
        (
            {
                "search": {
                    "candidates": [{"estimator": "random_forest", "grid": {"scaler": ["minmax"]}}]
                }
            },
            "unknown scaler",
        ),
        ({"search": {"candidates": [{"estimator": "random_forest"}]}, "evalute": {}}, "evalute"),
        (
            {"search": {"candidates": [{"estimator": "random_forest"}], "holdout_fraction": 0.9}},
            "holdout_fraction=0.9",
        ),
        ([1, 2], "must be a mapping"),
    ],
)
def test_malformed_params_name_the_key_and_value(raw, needle):
    with pytest.raises(ConfigError) as info:
        parse_params(raw, source="params.yaml")
    assert needle in str(info.value)
    assert "params.yaml" in str(info.value)


def test_params_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_integral_floats_from_kubeflow_become_ints():
    # protobuf carries every number as a double; scikit-learn wants ints for tree sizes
    params = parse_params(
        {
            "search": {
                "candidates": [
                    {
                        "estimator": "random_forest",
                        "grid": {"n_estimators": [100.0], "max_features": [0.5]},
                    }
                ]
            }
        }
    )
    grid = params.search.candidates[0].grid
    assert grid["n_estimators"] == [100]
    assert isinstance(grid["n_estimators"][0], int)
    assert grid["max_features"] == [0.5]


def test_a_shared_dotenv_does_not_break_settings(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("AWS_PROFILE=dev\nSLIPWAY_MODEL_NAME=fraud\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().model_name == "fraud"


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['trackin_uri'\]"):
        load_settings(trackin_uri="x")


def test_a_folder_that_is_not_a_dvc_project_is_named_before_anything_is_written(tmp_path):
    from slipway.data.versioning import push_datasets

    remote = tmp_path / "remote"
    with pytest.raises(ConfigError, match="is not a DVC project"):
        push_datasets(tmp_path / "nothing-here", str(remote))
    assert not remote.exists()
