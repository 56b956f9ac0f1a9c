"""Grid search over whole scikit-learn Pipelines (preprocessing + estimator).

The Pipeline is ``features`` (the spec's ColumnTransformer, :mod:`slipway.training.features`)
then ``clf`` (the estimator for the spec's task). Tuning the whole Pipeline means imputers,
scalers and encoders are refitted inside every CV fold, so no statistic of a validation fold
leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from slipway.data import DatasetSpec
from slipway.params import Candidate, SearchParams
from slipway.training.estimators import check_grid, make_estimator, make_scorer_for
from slipway.training.features import (
    build_preprocessor,
    feature_frame,
    scaler_name,
    target_values,
)


@dataclass
class SearchResult:
    """The refitted best pipeline and what the search saw."""

    best_estimator: Any
    best_params: dict[str, Any]
    best_cv_score: float
    cv_std: float
    candidates_tried: int
    scoring: str


def build_pipeline(spec: DatasetSpec, seed: int = 42) -> Any:
    """The template Pipeline: ``features`` (standard scaler) then a linear ``clf``; the grid swaps both."""
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("features", build_preprocessor(spec, "standard")),
            ("clf", make_estimator("linear", spec.task, seed)),
        ]
    )


def build_param_grid(
    candidates: list[Candidate], spec: DatasetSpec, seed: int
) -> list[dict[str, list[Any]]]:
    """One sub-grid per estimator family, in ``GridSearchCV``'s list-of-dicts form.

    A ``scaler`` grid entry swaps the whole ``features`` step (one preprocessor per scaler), so
    one scaler applies to every numeric column; other keys are the estimator's parameters.

    Raises:
        ConfigError: a grid key is not a parameter of the estimator chosen for the task.
    """
    grid = []
    for candidate in candidates:
        estimator = make_estimator(candidate.estimator, spec.task, seed)
        check_grid(candidate, estimator)
        sub: dict[str, list[Any]] = {"clf": [estimator]}
        for key, values in candidate.grid.items():
            if key == "scaler":
                sub["features"] = [build_preprocessor(spec, v) for v in values]
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
        elif key == "features":
            out["scaler"] = scaler_name(value)
        else:
            out[key.removeprefix("clf__")] = value
    return out


def fit_grid_search(train: pd.DataFrame, spec: DatasetSpec, params: SearchParams) -> SearchResult:
    """Run ``GridSearchCV`` and refit the best pipeline on all of ``train``.

    Folds are stratified for classification and plain shuffled ``KFold`` for regression.

    Args:
        train: the training split (features, target and ignored columns).
        spec: the dataset's spec (features, task, target).
        params: the ``search`` section of ``params.yaml``.

    Raises:
        ConfigError: the scoring does not fit the task, or a grid key is not a parameter of
            its estimator.
    """
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    scoring = params.scoring_for(spec.task)
    grid = build_param_grid(params.candidates, spec, params.seed)
    folds = KFold if spec.task == "regression" else StratifiedKFold
    search = GridSearchCV(
        build_pipeline(spec, params.seed),
        grid,
        scoring=make_scorer_for(scoring, spec),
        cv=folds(n_splits=params.cv_folds, shuffle=True, random_state=params.seed),
        n_jobs=params.n_jobs,
        refit=True,
        error_score="raise",
    )
    search.fit(feature_frame(train, spec), target_values(train, spec))
    best = search.best_index_
    return SearchResult(
        best_estimator=search.best_estimator_,
        best_params=describe_params(search.best_params_),
        best_cv_score=float(search.best_score_),
        cv_std=float(search.cv_results_["std_test_score"][best]),
        candidates_tried=len(search.cv_results_["params"]),
        scoring=scoring,
    )
