"""make_cv's folds are the scikit-learn splitter's, as int32 positions, and search the same."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from slipway.data import breast_cancer_spec, feature_frame, load_frame
from slipway.data.table import DATASET_VERSIONS, build_dataset
from slipway.params import SearchParams
from slipway.training.features import target_values
from slipway.training.search import Int32Folds, build_param_grid, build_pipeline, make_cv

SEARCH = SearchParams.model_validate(
    {
        "cv_folds": 4,
        "seed": 3,
        "candidates": [
            {"estimator": "logistic_regression", "grid": {"C": [0.1, 1.0], "scaler": ["standard"]}}
        ],
    }
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "v1.csv"
    build_dataset(DATASET_VERSIONS["v1"]).to_csv(path, index=False)
    spec = breast_cancer_spec()
    frame = load_frame(path, spec)
    return spec, feature_frame(frame, spec), target_values(frame, spec)


@pytest.mark.parametrize("splitter", [StratifiedKFold, KFold])
def test_the_folds_are_the_splitters_as_int32(rows, splitter):
    _, x, y = rows
    plain = splitter(n_splits=4, shuffle=True, random_state=3)
    folds = Int32Folds(plain)
    assert folds.get_n_splits(x, y) == 4
    ours, theirs = list(folds.split(x, y)), list(plain.split(x, y))
    assert len(ours) == len(theirs) == 4
    for (train, test), (train64, test64) in zip(ours, theirs, strict=True):
        assert train.dtype == test.dtype == np.int32
        np.testing.assert_array_equal(train, train64)
        np.testing.assert_array_equal(test, test64)


def test_make_cv_is_stratified_for_classification_and_searches_bit_for_bit_the_same(rows):
    spec, x, y = rows
    cv = make_cv(spec, SEARCH)
    assert isinstance(cv, Int32Folds)
    assert isinstance(cv.splitter, StratifiedKFold)
    grid = build_param_grid(SEARCH.candidates, spec, SEARCH.seed)
    plain = StratifiedKFold(n_splits=4, shuffle=True, random_state=3)
    ours = GridSearchCV(build_pipeline(spec), grid, scoring="roc_auc", cv=cv).fit(x, y)
    theirs = GridSearchCV(build_pipeline(spec), grid, scoring="roc_auc", cv=plain).fit(x, y)
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key])
    for split in range(4):
        key = f"split{split}_test_score"
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key])
    ours_clf = ours.best_estimator_.named_steps["clf"]
    theirs_clf = theirs.best_estimator_.named_steps["clf"]
    np.testing.assert_array_equal(ours_clf.coef_, theirs_clf.coef_)
