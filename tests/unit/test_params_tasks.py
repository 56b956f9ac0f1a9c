"""params.yaml values checked against the dataset's task: named value, task and valid choices."""

import pytest

from slipway.errors import ConfigError
from slipway.params import (
    METRICS,
    SCORING,
    EvaluateParams,
    check_params_for_task,
    load_params,
    parse_params,
)
from tests.support import REPO

CANDIDATES = [{"estimator": "linear"}]


def test_the_committed_params_fit_the_binary_default_dataset():
    params = load_params(REPO / "params.yaml")
    check_params_for_task(params, "binary")
    assert params.search.scoring_for("binary") == "roc_auc"
    assert params.evaluate.primary_metric_for("binary") == "roc_auc"
    assert params.evaluate.max_champion_drop == 0.1


@pytest.mark.parametrize(
    ("task", "scoring", "metric"),
    [
        ("binary", "roc_auc", "roc_auc"),
        ("multiclass", "f1_macro", "f1_macro"),
        ("regression", "neg_root_mean_squared_error", "rmse"),
    ],
)
def test_left_out_scoring_and_primary_metric_take_the_task_default(task, scoring, metric):
    params = parse_params({"search": {"candidates": CANDIDATES}})
    assert params.search.scoring_for(task) == scoring
    assert params.evaluate.primary_metric_for(task) == metric


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_listed_scoring_and_metric_fits_its_task(task):
    for scoring in SCORING[task]:
        assert parse_params({"search": {"scoring": scoring, "candidates": CANDIDATES}})
    for metric in METRICS[task]:
        EvaluateParams(primary_metric=metric, thresholds={metric: 0.5}).check_task(task)


def test_a_scoring_that_does_not_fit_the_task_names_value_task_and_choices():
    params = parse_params({"search": {"scoring": "roc_auc", "candidates": CANDIDATES}})
    with pytest.raises(ConfigError) as e:
        check_params_for_task(params, "regression")
    message = str(e.value)
    assert "search.scoring 'roc_auc' does not fit a regression dataset" in message
    assert "neg_root_mean_squared_error, neg_mean_absolute_error, r2" in message


def test_a_metric_or_threshold_that_does_not_fit_the_task_is_refused():
    with pytest.raises(ConfigError, match="primary_metric 'rmse' does not fit a multiclass"):
        EvaluateParams(primary_metric="rmse").check_task("multiclass")
    with pytest.raises(ConfigError, match="thresholds key 'f1' does not fit a regression") as e:
        EvaluateParams(primary_metric="r2", thresholds={"f1": 0.9}).check_task("regression")
    assert "rmse, mae, r2" in str(e.value)


def test_an_unknown_scoring_or_estimator_fails_at_parse_time():
    with pytest.raises(ConfigError, match=r"search\.scoring='auc'"):
        parse_params({"search": {"scoring": "auc", "candidates": CANDIDATES}})
    with pytest.raises(ConfigError, match="estimator='svm'"):
        parse_params({"search": {"candidates": [{"estimator": "svm"}]}})
    with pytest.raises(ConfigError, match="max_champion_drop"):
        parse_params({"search": {"candidates": CANDIDATES}, "evaluate": {"max_champion_drop": 2}})
