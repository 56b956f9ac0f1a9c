"""Grid search over whole scikit-learn Pipelines (preprocessing + estimator).

The Pipeline is ``features`` (the spec's ColumnTransformer, :mod:`slipway.training.features`)
then ``clf`` (the estimator for the spec's task). Tuning the whole Pipeline means imputers,
scalers and encoders are refitted inside every CV fold, so no statistic of a validation fold
leaks into training.

``search.strategy`` picks ``GridSearchCV`` (``grid``) or ``HalvingGridSearchCV`` (``halving``:
successive halving over training rows). Either way every candidate's CV result comes back as a
:class:`~slipway.training.shards.CandidateScore`, the same shape a sharded search merges into,
so that every candidate can be logged as an MLflow child run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
from slipway.training.shards import CandidateScore


@dataclass
class SearchResult:
    """The refitted best pipeline and what the search saw.

    Attributes:
        best_estimator: the best Pipeline, refitted on the whole training split.
        best_params: its parameters, readable (:func:`describe_params`).
        best_cv_score: its mean CV score.
        cv_std: the std of its CV scores.
        candidates_tried: how many candidates the grid holds.
        scoring: the scorer name.
        strategy: ``grid`` or ``halving``.
        fits: (candidate, fold) fits performed, the final refit not counted.
        candidates: every candidate's CV result (for halving, its last round's).
        shards: how many tasks the fits were spread over (1: one task).
    """

    best_estimator: Any
    best_params: dict[str, Any]
    best_cv_score: float
    cv_std: float
    candidates_tried: int
    scoring: str
    strategy: str = "grid"
    fits: int = 0
    candidates: list[CandidateScore] = field(default_factory=list)
    shards: int = 1


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


def make_cv(spec: DatasetSpec, params: SearchParams) -> Any:
    """The CV splitter: stratified for classification, shuffled ``KFold`` for regression, seeded.

    Its folds come as int32 positions (:class:`Int32Folds`). Every shard of a sharded search builds it again and gets the same folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = KFold if spec.task == "regression" else StratifiedKFold
    return Int32Folds(folds(n_splits=params.cv_folds, shuffle=True, random_state=params.seed))


class Int32Folds:
    """A CV splitter's folds, with their row positions as int32 instead of int64.

    ``GridSearchCV`` (and a shard) holds every fold's training and validation positions for the
    whole search: 18 MB as int64 for 3 folds of 800,000 rows, on top of the fold being fitted.
    The same positions as int32 select the same rows, so no fold, score or model changes. A
    table of 2**31 rows or more keeps int64.

    Args:
        splitter: the scikit-learn splitter whose folds these are.
    """

    def __init__(self, splitter: Any) -> None:
        self.splitter = splitter

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The splitter's number of folds."""
        return self.splitter.get_n_splits(X, y, groups)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        """The splitter's ``(train, test)`` positions, as int32 when they fit."""
        for train, test in self.splitter.split(X, y, groups):
            if len(train) + len(test) < 2**31:
                yield train.astype(np.int32), test.astype(np.int32)
            else:
                yield train, test

    def __repr__(self) -> str:
        return f"Int32Folds({self.splitter!r})"


def fit_grid_search(train: pd.DataFrame, spec: DatasetSpec, params: SearchParams) -> SearchResult:
    """Run the search of ``params.strategy`` and refit the best pipeline on all of ``train``.

    ``grid`` is ``GridSearchCV``; ``halving`` is ``HalvingGridSearchCV`` over training rows
    (``params.halving``: factor and first-round rows). Folds are stratified for classification
    and plain shuffled ``KFold`` for regression.

    Args:
        train: the training split (features, target and ignored columns).
        spec: the dataset's spec (features, task, target).
        params: the ``search`` section of ``params.yaml``.

    Raises:
        ConfigError: the scoring does not fit the task, or a grid key is not a parameter of
            its estimator.
    """
    return fit_search(feature_frame(train, spec), target_values(train, spec), spec, params)


def fit_search(
    x: pd.DataFrame, y: np.ndarray, spec: DatasetSpec, params: SearchParams
) -> SearchResult:
    """:func:`fit_grid_search` on the training rows already split into input and target.

    The search step calls this once it has released the table and its training frame, so that
    only the model's input (``x``) is held while the folds are fitted.

    Args:
        x: the training rows as the model takes them (:func:`~slipway.data.feature_frame`).
        y: their target (:func:`~slipway.training.features.target_values`).
        spec: the dataset's spec (features, task, target).
        params: the ``search`` section of ``params.yaml``.

    Raises:
        ConfigError: the scoring does not fit the task, or a grid key is not a parameter of
            its estimator.
    """
    scoring = params.scoring_for(spec.task)
    grid = build_param_grid(params.candidates, spec, params.seed)
    common = {
        "scoring": make_scorer_for(scoring, spec),
        "cv": make_cv(spec, params),
        "n_jobs": params.n_jobs,
        "refit": True,
        "error_score": "raise",
    }
    if params.strategy == "halving":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import
        from sklearn.model_selection import HalvingGridSearchCV

        search = HalvingGridSearchCV(
            build_pipeline(spec, params.seed),
            grid,
            factor=params.halving.factor,
            min_resources=params.halving.min_resources,
            random_state=params.seed,
            return_train_score=False,
            **common,
        )
    else:
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(build_pipeline(spec, params.seed), grid, **common)
    search.fit(x, y)
    best = search.best_index_
    candidates = candidate_scores(search.cv_results_)
    return SearchResult(
        best_estimator=search.best_estimator_,
        best_params=describe_params(search.best_params_),
        best_cv_score=float(search.best_score_),
        cv_std=float(search.cv_results_["std_test_score"][best]),
        candidates_tried=len(candidates),
        scoring=scoring,
        strategy=params.strategy,
        fits=len(search.cv_results_["params"]) * params.cv_folds,
        candidates=candidates,
    )


def candidate_scores(cv_results: dict[str, Any]) -> list[CandidateScore]:
    """Every candidate's result from a search's ``cv_results_``, in ``ParameterGrid`` order.

    A halving search scores a candidate once per round it survives; its last round (the most
    rows) is the one kept, with that round and its rows.
    """
    rounds = cv_results.get("iter")
    first_round = [i for i in range(len(cv_results["params"])) if rounds is None or rounds[i] == 0]
    # HalvingGridSearchCV carries a survivor's very params dict into the next round (a repr
    # would not do: scikit-learn shortens long estimator reprs, so two could look the same)
    keys = {id(cv_results["params"][i]): n for n, i in enumerate(first_round)}
    last: dict[int, int] = {}
    for i, row_params in enumerate(cv_results["params"]):
        last[keys[id(row_params)]] = i  # rows are in round order: the last one wins
    return [
        CandidateScore(
            candidate=n,
            params=cv_results["params"][i],
            mean_score=float(cv_results["mean_test_score"][i]),
            std_score=float(cv_results["std_test_score"][i]),
            rank=int(cv_results["rank_test_score"][i]),
            fit_time=float(cv_results["mean_fit_time"][i]),
            shards=(0,),
            round=None if rounds is None else int(rounds[i]),
            rows=None if rounds is None else int(cv_results["n_resources"][i]),
        )
        for n, i in sorted(last.items())
    ]
