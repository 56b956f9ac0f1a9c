"""A grid search cut into shards and merged equals one GridSearchCV over the same grid."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from slipway.errors import ConfigError
from slipway.training.shards import count_fits, fit_shard, merge_shards, shard_fits

X, Y = make_classification(n_samples=240, n_features=8, n_informative=4, random_state=3)
TEMPLATE = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
GRID = [
    {"scaler": [StandardScaler(), RobustScaler()], "clf__C": [0.01, 0.1, 1.0, 10.0]},
    {
        "scaler": ["passthrough"],
        "clf": [DecisionTreeClassifier(random_state=0)],
        "clf__max_depth": [2, 4, 8],
    },
]
CV = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)


@pytest.fixture(scope="module")
def reference():
    return GridSearchCV(TEMPLATE, GRID, scoring="roc_auc", cv=CV, error_score="raise").fit(X, Y)


@pytest.mark.parametrize("shards", [1, 2, 5])
def test_merged_shards_equal_one_grid_search(reference, shards):
    results = [fit_shard(TEMPLATE, GRID, X, Y, CV, "roc_auc", s, shards) for s in range(shards)]
    merged = merge_shards(GRID, CV.get_n_splits(), results)
    cv = reference.cv_results_
    np.testing.assert_allclose(
        [c.mean_score for c in merged.candidates], cv["mean_test_score"], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        [c.std_score for c in merged.candidates], cv["std_test_score"], rtol=0, atol=1e-12
    )
    assert [c.rank for c in merged.candidates] == list(cv["rank_test_score"])
    assert merged.best.candidate == reference.best_index_
    assert repr(merged.best.params) == repr(reference.best_params_)
    assert {s for c in merged.candidates for s in c.shards} == set(range(shards))


def test_every_fit_is_in_exactly_one_shard():
    n = count_fits(GRID, 5)
    assert n == (8 + 3) * 5
    for shards in (1, 2, 7, n):
        dealt = shard_fits(n, shards)
        assert sorted(f for s in dealt for f in s) == list(range(n))
        assert max(map(len, dealt)) - min(map(len, dealt)) <= 1


@pytest.mark.parametrize("shards", [0, -1, 56])
def test_shard_count_out_of_range_names_the_limit(shards):
    with pytest.raises(ConfigError, match=f"search_shards={shards}"):
        shard_fits(55, shards)


def test_a_missing_shard_is_named_by_its_candidates():
    results = [fit_shard(TEMPLATE, GRID, X, Y, CV, "roc_auc", s, 5) for s in (0, 1, 2, 4)]
    with pytest.raises(ConfigError, match=r"no score for candidate\(s\) \[6, 7, 8\]"):
        merge_shards(GRID, 5, results)


def test_a_shard_given_twice_is_refused():
    results = [fit_shard(TEMPLATE, GRID, X, Y, CV, "roc_auc", s, 5) for s in range(5)]
    with pytest.raises(ConfigError, match=r"candidate\(s\) \[0, 1, 2\] scored twice"):
        merge_shards(GRID, 5, [*results, results[0]])
