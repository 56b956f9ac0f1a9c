"""Estimators, scoring and metrics per task; the gate's directions and the champion-collapse report."""

import numpy as np
import pytest

from slipway.data import DatasetSpec
from slipway.errors import ConfigError
from slipway.params import Candidate, EvaluateParams
from slipway.training.estimators import check_grid, make_estimator, make_scorer_for
from slipway.training.gate import decide_promotion
from slipway.training.metrics import _binary_scores, _multiclass_scores, _regression_scores


def spec(task: str, **extra) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "name": "toy",
            "task": task,
            "target": "y",
            "features": [{"name": "x", "kind": "numeric"}],
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("name", "task", "expected"),
    [
        ("logistic_regression", "binary", "LogisticRegression"),
        ("linear", "multiclass", "LogisticRegression"),
        ("linear", "regression", "Ridge"),
        ("logistic_regression", "regression", "Ridge"),
        ("random_forest", "multiclass", "RandomForestClassifier"),
        ("random_forest", "regression", "RandomForestRegressor"),
        ("hist_gradient_boosting", "binary", "HistGradientBoostingClassifier"),
        ("hist_gradient_boosting", "regression", "HistGradientBoostingRegressor"),
        ("gradient_boosting", "binary", "GradientBoostingClassifier"),
        ("gradient_boosting", "regression", "GradientBoostingRegressor"),
    ],
)
def test_the_estimator_name_maps_to_the_class_of_the_task(name, task, expected):
    estimator = make_estimator(name, task, seed=7)
    assert type(estimator).__name__ == expected
    if "random_state" in estimator.get_params() and expected != "Ridge":
        assert estimator.random_state == 7


def test_a_grid_key_the_estimator_does_not_have_is_named_with_the_valid_ones():
    candidate = Candidate(estimator="linear", grid={"C": [1.0]})
    check_grid(candidate, make_estimator("linear", "binary", 1))  # C is LogisticRegression's
    with pytest.raises(ConfigError, match=r"grid key 'C' of linear is not a parameter of Ridge"):
        check_grid(candidate, make_estimator("linear", "regression", 1))
    with pytest.raises(ConfigError, match="alpha"):
        check_grid(candidate, make_estimator("linear", "regression", 1))


def test_binary_positive_class_scorers_use_the_spec_positive_class():
    binary = spec("binary", classes=["benign", "malignant"], positive_class="malignant")
    scorer = make_scorer_for("f1", binary)
    assert scorer._kwargs["pos_label"] == "malignant"
    assert make_scorer_for("roc_auc", binary) == "roc_auc"
    assert make_scorer_for("f1_macro", spec("multiclass", classes=["a", "b", "c"])) == "f1_macro"


def test_binary_scores_follow_the_positive_class():
    y = np.array(["no", "yes", "yes", "no"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    scores = _binary_scores(y, proba, ["no", "yes"], "yes")
    assert scores["recall"] == 0.5
    assert scores["precision"] == 0.5
    assert scores["accuracy"] == 0.5
    assert scores["roc_auc"] == 0.75


def test_multiclass_scores():
    y = np.array(["a", "b", "c", "a", "b", "c"])
    proba = np.array(
        [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1],
         [0.2, 0.2, 0.6]]
    )  # fmt: skip
    scores = _multiclass_scores(y, proba, ["a", "b", "c"])
    assert set(scores) == {"f1_macro", "balanced_accuracy", "log_loss", "roc_auc_ovr", "accuracy"}
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert scores["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert scores["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 1) / 3)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.8, 0.6, 0.4, 0.6])))
    assert 0.9 < scores["roc_auc_ovr"] <= 1.0


def test_ovr_auc_leaves_out_a_class_missing_from_the_holdout():
    y = np.array(["a", "b", "a", "b"])
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    assert _multiclass_scores(y, proba, ["a", "b", "c"])["roc_auc_ovr"] == 1.0


def test_regression_scores():
    scores = _regression_scores(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert scores == {"rmse": pytest.approx(1.0), "mae": 0.5, "r2": pytest.approx(1 - 4 / 5)}


REGRESSION_GATE = EvaluateParams(primary_metric="rmse", min_delta=0.05, thresholds={"rmse": 2.0})


@pytest.mark.parametrize(
    ("candidate_rmse", "promote"), [(1.40, True), (1.45, True), (1.46, False), (1.6, False)]
)
def test_a_lower_is_better_metric_must_be_lower_than_the_champion_by_min_delta(
    candidate_rmse, promote
):
    d = decide_promotion(
        {"rmse": candidate_rmse, "mae": 1.0, "r2": 0.8},
        {"rmse": 1.5, "mae": 1.0, "r2": 0.8},
        REGRESSION_GATE,
        "2",
        "v2-x",
        task="regression",
    )
    assert d.promote is promote
    assert d.primary_metric == "rmse"
    assert "lower is better" in d.reason


def test_thresholds_are_ceilings_for_lower_is_better_metrics():
    ok = decide_promotion(
        {"rmse": 1.9, "mae": 1, "r2": 0.5}, None, REGRESSION_GATE, task="regression"
    )
    assert ok.promote
    d = decide_promotion(
        {"rmse": 2.5, "mae": 1, "r2": 0.5}, None, REGRESSION_GATE, task="regression"
    )
    assert not d.promote
    assert d.failed_thresholds == ["rmse 2.5000 > 2.0000 (ceiling)"]
    assert "above the absolute ceilings" in d.reason


def test_the_default_primary_metric_follows_the_task():
    gate = EvaluateParams()
    d = decide_promotion({"f1_macro": 0.9}, {"f1_macro": 0.8}, gate, "1", "v1", task="multiclass")
    assert d.primary_metric == "f1_macro"
    assert d.promote


GOOD = {"roc_auc": 0.99, "f1": 0.95, "accuracy": 0.96, "precision": 0.95, "recall": 0.95}
BINARY_GATE = EvaluateParams(primary_metric="roc_auc", max_champion_drop=0.1)


def test_a_collapsed_champion_is_reported_as_a_likely_data_problem():
    d = decide_promotion(
        GOOD,
        {**GOOD, "roc_auc": 0.70},
        BINARY_GATE,
        "3",
        "v3-x",
        task="binary",
        champion_recorded=0.995,
    )
    assert d.data_problem is not None
    assert "likely a data problem" in d.data_problem
    assert "scores roc_auc 0.7000 on this holdout, 29.6% worse than the 0.9950" in d.data_problem
    assert d.reason.endswith(d.data_problem)  # so the run summary shows it


@pytest.mark.parametrize(("now", "flagged"), [(0.896, False), (0.895, True), (0.99, False)])
def test_collapse_is_a_relative_drop_beyond_max_champion_drop(now, flagged):
    d = decide_promotion(
        GOOD, {**GOOD, "roc_auc": now}, BINARY_GATE, "3", task="binary", champion_recorded=0.995
    )
    assert (d.data_problem is not None) is flagged


def test_collapse_of_a_lower_is_better_metric_is_a_rise():
    args = ({"rmse": 1.0, "mae": 1, "r2": 0.5}, REGRESSION_GATE, "2")
    worse = decide_promotion(
        args[0], {"rmse": 1.5, "mae": 1, "r2": 0.5}, *args[1:], task="regression",
        champion_recorded=1.2,
    )  # fmt: skip
    better = decide_promotion(
        args[0], {"rmse": 0.8, "mae": 1, "r2": 0.5}, *args[1:], task="regression",
        champion_recorded=1.2,
    )  # fmt: skip
    assert worse.data_problem is not None
    assert "25.0% worse" in worse.data_problem
    assert better.data_problem is None
    no_record = decide_promotion(
        args[0], {"rmse": 9.0, "mae": 1, "r2": 0.5}, *args[1:], task="regression"
    )
    assert no_record.data_problem is None
