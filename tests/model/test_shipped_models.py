"""Quality and behaviour of the models trained on the shipped penguins and diamonds datasets.

Each is trained as the pipeline trains it: the dataset's committed spec, the project's
``params.yaml`` with the dataset's ``data/<name>/params.yaml`` merged over it, the fixed
hash-based holdout split, then ``fit_grid_search``. The floors are the dataset's own
``evaluate.thresholds`` (the promotion gate) plus training and cross-validation floors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import clone

from slipway.data import feature_frame, load_dataset_spec, split_dataset
from slipway.data.checks import normalise_frame
from slipway.data.shipped import diamonds_frame, penguins_frame
from slipway.orchestration.request import dataset_params
from slipway.params import LOWER_IS_BETTER
from slipway.training.metrics import score_model
from slipway.training.search import fit_grid_search
from tests.support import REPO

BUILD = {"penguins": penguins_frame, "diamonds": diamonds_frame}
# the training split must score at least this well (lower-is-better: at most)
TRAIN_FLOORS = {
    "penguins": {"f1_macro": 0.97, "balanced_accuracy": 0.97},
    "diamonds": {"rmse": 700.0, "r2": 0.96},
}
# the best candidate's mean CV score, in the scorer's sign (higher is better)
CV_FLOORS = {"penguins": 0.95, "diamonds": -800.0}


def _meets(metric: str, value: float, limit: float) -> bool:
    return value <= limit if metric in LOWER_IS_BETTER else value >= limit


@pytest.fixture(scope="module", params=["penguins", "diamonds"])
def trained(request):
    name = request.param
    folder = REPO / "data" / name
    spec = load_dataset_spec(folder / "dataset.yaml")
    override = yaml.safe_load((folder / "params.yaml").read_text())
    params = dataset_params(REPO / "params.yaml", override, name)
    frame = normalise_frame(BUILD[name](), spec)
    train, holdout = split_dataset(
        frame, params.search.holdout_fraction, params.search.seed, spec.target
    )
    result = fit_grid_search(train, spec, params.search)
    return name, spec, params, train, holdout, result


def test_training_split_quality(trained):
    name, spec, _, train, _, result = trained
    scores = score_model(result.best_estimator, train, spec)
    for metric, limit in TRAIN_FLOORS[name].items():
        assert _meets(metric, scores[metric], limit), (metric, scores[metric])


def test_cross_validation_quality(trained):
    name, *_, result = trained
    assert result.best_cv_score >= CV_FLOORS[name], result.best_cv_score


def test_holdout_quality_meets_the_promotion_thresholds(trained):
    _, spec, params, _, holdout, result = trained
    scores = score_model(result.best_estimator, holdout, spec)
    assert params.evaluate.thresholds, "each shipped dataset commits its thresholds"
    for metric, limit in params.evaluate.thresholds.items():
        assert _meets(metric, scores[metric], limit), (metric, scores[metric], limit)


def _predict(model, x: pd.DataFrame, task: str) -> np.ndarray:
    return model.predict(x) if task == "regression" else model.predict_proba(x)


def test_the_chosen_pipeline_is_deterministic(trained):
    # refitting the chosen pipeline on the same rows reproduces the search's refit exactly (the
    # search's own determinism, best parameters included, is tested on the default dataset)
    _, spec, _, train, holdout, result = trained
    again = clone(result.best_estimator).fit(
        feature_frame(train, spec), train[spec.target].to_numpy()
    )
    x = feature_frame(holdout, spec)
    np.testing.assert_array_equal(
        _predict(again, x, spec.task), _predict(result.best_estimator, x, spec.task)
    )


def test_invariant_to_row_order(trained):
    _, spec, params, train, holdout, result = trained
    x = feature_frame(holdout, spec)
    # the holdout split hashes each row's values: reordering the table moves no row across it
    table = pd.concat([train, holdout]).sample(frac=1.0, random_state=3)
    _, again = split_dataset(table, params.search.holdout_fraction, params.search.seed, spec.target)
    key = [*spec.feature_names, spec.target]
    pd.testing.assert_frame_equal(
        again.sort_values(key, ignore_index=True), holdout.sort_values(key, ignore_index=True)
    )
    # refitting the chosen pipeline on the training rows in another order changes nothing
    shuffled = train.sample(frac=1.0, random_state=7)
    refit = clone(result.best_estimator).fit(
        feature_frame(shuffled, spec), shuffled[spec.target].to_numpy()
    )
    scale = 1e-4 if spec.task != "regression" else 1e-4 * float(train[spec.target].std())
    np.testing.assert_allclose(
        _predict(refit, x, spec.task), _predict(result.best_estimator, x, spec.task), atol=scale
    )
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_allclose(
        _predict(result.best_estimator, x.iloc[order], spec.task),
        _predict(result.best_estimator, x, spec.task)[order],
    )
