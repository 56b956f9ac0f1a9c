"""Quality thresholds and behaviour of the model trained on the default dataset with params.yaml."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from slipway.data.schema import breast_cancer_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset, split_dataset
from slipway.params import load_params
from slipway.training.metrics import score_model
from slipway.training.search import fit_grid_search
from tests.support import REPO

PROJECT = REPO
TARGET = "diagnosis"
SPEC = breast_cancer_spec()


@pytest.fixture(scope="module")
def setup():
    params = load_params(PROJECT / "params.yaml")
    frame = build_dataset(DATASET_VERSIONS["v2"])
    train, holdout = split_dataset(frame, params.search.holdout_fraction, params.search.seed)
    result = fit_grid_search(train, SPEC, params.search)
    return params, train, holdout, result


def test_training_split_quality(setup):
    _, train, _, result = setup
    scores = score_model(result.best_estimator, train, SPEC)
    assert scores["roc_auc"] >= 0.98
    assert scores["f1"] >= 0.95


def test_validation_quality(setup):
    params, train, _, result = setup
    assert result.best_cv_score >= 0.98
    f1 = cross_val_score(
        clone(result.best_estimator),
        train.drop(columns=[TARGET]),
        train[TARGET],
        cv=params.search.cv_folds,
        scoring="f1",
    )
    assert f1.mean() >= 0.92


def test_holdout_quality_meets_the_promotion_thresholds(setup):
    params, _, holdout, result = setup
    scores = score_model(result.best_estimator, holdout, SPEC)
    assert scores["roc_auc"] >= 0.98
    assert scores["f1"] >= 0.92
    for metric, floor in params.evaluate.thresholds.items():
        assert scores[metric] >= floor, metric


def test_predictions_are_deterministic_for_a_fixed_seed(setup):
    params, train, holdout, result = setup
    again = fit_grid_search(train, SPEC, params.search)
    assert again.best_params == result.best_params
    x = holdout.drop(columns=[TARGET])
    np.testing.assert_array_equal(
        again.best_estimator.predict_proba(x), result.best_estimator.predict_proba(x)
    )


def test_invariant_to_row_order(setup):
    _, train, holdout, result = setup
    x = holdout.drop(columns=[TARGET])
    shuffled = train.sample(frac=1.0, random_state=7)
    refit = clone(result.best_estimator).fit(shuffled.drop(columns=[TARGET]), shuffled[TARGET])
    np.testing.assert_allclose(
        refit.predict_proba(x), result.best_estimator.predict_proba(x), atol=1e-4
    )
    # and predicting rows in another order permutes the predictions, nothing else
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_allclose(
        result.best_estimator.predict_proba(x.iloc[order]),
        result.best_estimator.predict_proba(x)[order],
    )


def test_larger_tumours_raise_the_malignancy_score(setup):
    # behavioural: growing the "worst" size measurements of a benign case must not lower its risk
    _, _, holdout, result = setup
    benign = holdout[holdout[TARGET] == 0].drop(columns=[TARGET]).head(10)
    grown = benign.copy()
    for col in (
        "worst_radius",
        "worst_perimeter",
        "worst_area",
        "mean_radius",
        "mean_area",
        "mean_perimeter",
    ):
        grown[col] = grown[col] * 1.5
    before = result.best_estimator.predict_proba(benign)[:, 1]
    after = result.best_estimator.predict_proba(grown)[:, 1]
    assert (after >= before - 1e-9).all()
    assert after.mean() > before.mean()
