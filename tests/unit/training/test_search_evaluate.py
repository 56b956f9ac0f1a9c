"""Grid search building blocks and the promotion gate."""

import dataclasses
import json

import pytest

from slipway.data.schema import breast_cancer_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset, split_dataset
from slipway.params import EvaluateParams, parse_params
from slipway.training.features import build_preprocessor
from slipway.training.gate import decide_promotion
from slipway.training.metrics import confusion_and_roc, score_model
from slipway.training.search import build_param_grid, describe_params, fit_grid_search

SPEC = breast_cancer_spec()

GATE = EvaluateParams(
    primary_metric="roc_auc", min_delta=0.002, thresholds={"roc_auc": 0.95, "f1": 0.9}
)
GOOD = {"roc_auc": 0.99, "f1": 0.95, "accuracy": 0.96, "precision": 0.95, "recall": 0.95}


def test_first_model_is_promoted_when_thresholds_hold():
    d = decide_promotion(GOOD, None, GATE, task="binary")
    assert d.promote
    assert "no champion yet" in d.reason


def test_threshold_failure_names_the_metric_and_values():
    d = decide_promotion({**GOOD, "f1": 0.8}, None, GATE, task="binary")
    assert not d.promote
    assert d.failed_thresholds == ["f1 0.8000 < 0.9000"]
    assert "below the absolute thresholds" in d.reason


@pytest.mark.parametrize(
    ("candidate_auc", "promote"),
    [(0.9925, True), (0.9920, True), (0.9919, False), (0.99, False), (0.98, False)],
)
def test_champion_must_be_beaten_by_min_delta(candidate_auc, promote):
    d = decide_promotion(
        {**GOOD, "roc_auc": candidate_auc},
        {**GOOD, "roc_auc": 0.99},
        GATE,
        "3",
        "v3-x",
        task="binary",
    )
    assert d.promote is promote
    assert "v3-x" in d.reason
    assert d.champion_version == "3"


def test_param_grid_swaps_whole_pipeline_steps():
    params = parse_params(
        {
            "search": {
                "candidates": [
                    {
                        "estimator": "logistic_regression",
                        "grid": {"scaler": ["standard", "none"], "C": [0.1, 1.0]},
                    },
                    {"estimator": "random_forest", "grid": {"n_estimators": [10]}},
                ]
            }
        }
    )
    grid = build_param_grid(params.search.candidates, SPEC, seed=1)
    assert len(grid) == 2
    assert type(grid[0]["clf"][0]).__name__ == "LogisticRegression"
    assert grid[0]["clf__C"] == [0.1, 1.0]
    # a scaler swaps the whole features step: one preprocessor per scaler
    numeric = [{n: t for n, t, _ in f.transformers}["numeric"] for f in grid[0]["features"]]
    assert type(numeric[0]).__name__ == "StandardScaler"
    assert numeric[1] == "passthrough"
    assert "features" not in grid[1]  # no scaler listed: the template's standard scaler
    assert type(grid[1]["clf"][0]).__name__ == "RandomForestClassifier"
    assert grid[1]["clf"][0].random_state == 1


def test_describe_params_is_readable():
    from sklearn.linear_model import LogisticRegression

    assert describe_params(
        {"clf": LogisticRegression(), "features": build_preprocessor(SPEC), "clf__C": 1.0}
    ) == {
        "estimator": "LogisticRegression",
        "scaler": "StandardScaler",
        "C": 1.0,
    }


@pytest.fixture(scope="module")
def small_search():
    frame = build_dataset(DATASET_VERSIONS["v1"])
    train, holdout = split_dataset(frame, 0.2, 42)
    params = parse_params(
        {
            "search": {
                "cv_folds": 3,
                "candidates": [
                    {"estimator": "logistic_regression", "grid": {"C": [0.01, 1.0]}},
                    {
                        "estimator": "random_forest",
                        "grid": {"scaler": ["none"], "n_estimators": [20], "max_depth": [3]},
                    },
                ],
            }
        }
    )
    return fit_grid_search(train, SPEC, params.search), holdout


def test_grid_search_tries_every_candidate_and_refits(small_search):
    result, holdout = small_search
    assert result.candidates_tried == 3
    assert result.scoring == "roc_auc"
    assert 0.9 < result.best_cv_score <= 1.0
    assert result.best_params["estimator"] in {"LogisticRegression", "RandomForestClassifier"}
    scores = score_model(result.best_estimator, holdout, SPEC)
    assert set(scores) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert scores["roc_auc"] > 0.95


def test_curves_are_json_ready(small_search):
    result, holdout = small_search
    curves = confusion_and_roc(result.best_estimator, holdout, SPEC)
    assert sum(map(sum, curves.matrix)) == len(holdout)
    assert max(curves.thresholds) <= 1.0  # +inf would break the KFP UI
    assert curves.fpr[0] == 0.0
    assert curves.tpr[-1] == 1.0
    assert curves.labels == ["0", "1"]  # the spec's classes, negative first
    assert json.loads(json.dumps(dataclasses.asdict(curves)))["matrix"] == curves.matrix


def test_mlflow_tracking_uri_restores_the_global_uris_and_env(tmp_path, monkeypatch):
    import os

    import mlflow

    from slipway.registry import mlflow_tracking_uri

    outer = f"sqlite:///{tmp_path / 'outer.db'}"
    mlflow.set_tracking_uri(outer)
    mlflow.set_registry_uri(outer)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", outer)
    inner = f"sqlite:///{tmp_path / 'inner.db'}"
    with mlflow_tracking_uri(inner):
        assert mlflow.get_tracking_uri() == inner
        assert mlflow.get_registry_uri() == inner
        assert os.environ["MLFLOW_TRACKING_URI"] == inner
    assert mlflow.get_tracking_uri() == outer
    assert mlflow.get_registry_uri() == outer
    assert os.environ["MLFLOW_TRACKING_URI"] == outer
    assert "MLFLOW_REGISTRY_URI" not in os.environ


def test_decision_round_trips_through_the_artifact_json():
    import json

    from slipway.training.gate import Decision

    d = decide_promotion(
        {**GOOD, "roc_auc": 0.9925},
        {**GOOD, "roc_auc": 0.99},
        GATE,
        "3",
        "v3",
        task="binary",
        champion_recorded=0.995,
    )
    again = Decision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again == d
    assert again.champion_version == "3"
    with pytest.raises(TypeError, match="unexpected"):
        Decision.from_dict({**d.to_dict(), "surprise": 1})
