"""Estimators and scorers by name, for the dataset's task.

``params.yaml`` names an estimator family (``logistic_regression``/``linear``, ``random_forest``,
``hist_gradient_boosting``, ``gradient_boosting``); the spec's task picks the classifier or the
regressor of that family. Grid keys are checked against the chosen class before anything runs.
"""

from __future__ import annotations

from typing import Any

from slipway.data import DatasetSpec
from slipway.errors import ConfigError
from slipway.params import Candidate

#: Binary scorers that need to know which class is the positive one.
_POSITIVE_CLASS_SCORERS = ("f1", "precision", "recall")


def make_estimator(name: str, task: str, seed: int) -> Any:
    """The unfitted estimator of family ``name`` for ``task``, seeded where it draws randomness.

    Args:
        name: one of ``slipway.params.ESTIMATORS``.
        task: ``binary``, ``multiclass`` or ``regression``.
        seed: the search's seed.

    Raises:
        ConfigError: ``name`` is not a known family.
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    regression = task == "regression"
    if name in ("logistic_regression", "linear"):
        return Ridge() if regression else LogisticRegression(max_iter=5000, random_state=seed)
    families = {
        "random_forest": (RandomForestClassifier, RandomForestRegressor, {"n_jobs": 1}),
        "hist_gradient_boosting": (
            HistGradientBoostingClassifier,
            HistGradientBoostingRegressor,
            # no early stopping by default: above 10,000 rows "auto" holds out a validation
            # slice chosen by row position, so the model would change with the table's row
            # order (a grid may still set early_stopping: true)
            {"early_stopping": False},
        ),
        "gradient_boosting": (GradientBoostingClassifier, GradientBoostingRegressor, {}),
    }
    if name not in families:
        raise ConfigError(
            f"unknown estimator {name!r}; use one of logistic_regression, linear, "
            f"{', '.join(families)}"
        )
    classifier, regressor, extra = families[name]
    return (regressor if regression else classifier)(random_state=seed, **extra)


def check_grid(candidate: Candidate, estimator: Any) -> None:
    """Check that every grid key (``scaler`` aside) is a parameter of ``estimator``.

    Raises:
        ConfigError: names the key, the estimator class and its valid parameters.
    """
    valid = estimator.get_params(deep=False)
    for key in candidate.grid:
        if key != "scaler" and key not in valid:
            raise ConfigError(
                f"search grid key {key!r} of {candidate.estimator} is not a parameter of "
                f"{type(estimator).__name__}; use scaler or one of {', '.join(sorted(valid))}"
            )


def make_scorer_for(scoring: str, spec: DatasetSpec) -> Any:
    """What ``GridSearchCV(scoring=…)`` takes for ``scoring`` on ``spec``'s data.

    A scorer name as it is, except binary ``f1``/``precision``/``recall``, which are bound to
    the spec's positive class (scikit-learn's default positive label is ``1``).
    """
    if spec.task != "binary" or scoring not in _POSITIVE_CLASS_SCORERS:
        return scoring
    from sklearn.metrics import f1_score, make_scorer, precision_score, recall_score

    metric = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[scoring]
    return make_scorer(metric, pos_label=spec.positive_class, zero_division=0)
