"""Grid search over whole scikit-learn Pipelines (preprocessing + estimator).

Tuning the whole Pipeline means the scaler is refitted inside every CV fold, so no statistic of
a validation fold leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from slipway.params import Candidate, SearchParams


@dataclass
class SearchResult:
    """The refitted best pipeline and what the search saw."""

    best_estimator: Any
    best_params: dict[str, Any]
    best_cv_score: float
    cv_std: float
    candidates_tried: int
    scoring: str


def _scaler(name: str):
    from sklearn.preprocessing import RobustScaler, StandardScaler

    return {"standard": StandardScaler(), "robust": RobustScaler(), "none": "passthrough"}[name]


def _estimator(name: str, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logistic_regression": LogisticRegression(max_iter=5000, random_state=seed),
        "random_forest": RandomForestClassifier(random_state=seed, n_jobs=1),
        "gradient_boosting": GradientBoostingClassifier(random_state=seed),
    }[name]


def build_pipeline(seed: int = 42):
    """The template Pipeline: ``scaler`` then ``clf``; the grid swaps both."""
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [("scaler", _scaler("standard")), ("clf", _estimator("logistic_regression", seed))]
    )


def build_param_grid(candidates: list[Candidate], seed: int) -> list[dict[str, list[Any]]]:
    """One sub-grid per estimator family, in ``GridSearchCV``'s list-of-dicts form."""
    grid = []
    for candidate in candidates:
        sub: dict[str, list[Any]] = {"clf": [_estimator(candidate.estimator, seed)]}
        for key, values in candidate.grid.items():
            if key == "scaler":
                sub["scaler"] = [_scaler(v) for v in values]
            else:
                sub[f"clf__{key}"] = list(values)
        grid.append(sub)
    return grid


def describe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Readable best parameters: estimator and scaler by name, plain values otherwise."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "clf":
            out["estimator"] = type(value).__name__
        elif key == "scaler":
            out["scaler"] = value if isinstance(value, str) else type(value).__name__
        else:
            out[key.removeprefix("clf__")] = value
    return out


def fit_grid_search(train: pd.DataFrame, target: str, params: SearchParams) -> SearchResult:
    """Run ``GridSearchCV`` with stratified folds and refit the best pipeline on all of ``train``."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    x, y = train.drop(columns=[target]), train[target]
    grid = build_param_grid(params.candidates, params.seed)
    search = GridSearchCV(
        build_pipeline(params.seed),
        grid,
        scoring=params.scoring,
        cv=StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed),
        n_jobs=params.n_jobs,
        refit=True,
        error_score="raise",
    )
    search.fit(x, y)
    best = search.best_index_
    return SearchResult(
        best_estimator=search.best_estimator_,
        best_params=describe_params(search.best_params_),
        best_cv_score=float(search.best_score_),
        cv_std=float(search.cv_results_["std_test_score"][best]),
        candidates_tried=len(search.cv_results_["params"]),
        scoring=params.scoring,
    )
