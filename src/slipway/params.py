"""The ``params.yaml`` schema: grids and thresholds, one section per pipeline step.

Each section is a pydantic model, so a malformed file fails at the entry point, before any side
effect, with one sentence naming the key, the value and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slipway.errors import ConfigError

SCALERS = ("standard", "robust", "none")

#: Estimator names a candidate may use; each maps to a classifier or a regressor by the dataset's
#: task (``slipway.training.estimators``). ``linear`` and ``logistic_regression`` are one family:
#: LogisticRegression for classification, Ridge for regression.
ESTIMATORS = (
    "logistic_regression",
    "linear",
    "random_forest",
    "hist_gradient_boosting",
    "gradient_boosting",
)

#: The ``search.scoring`` values (scikit-learn scorer names) that fit each task; the first is the
#: task's default.
SCORING: dict[str, tuple[str, ...]] = {
    "binary": (
        "roc_auc",
        "f1",
        "precision",
        "recall",
        "accuracy",
        "balanced_accuracy",
        "neg_log_loss",
    ),
    "multiclass": (
        "f1_macro",
        "f1_weighted",
        "balanced_accuracy",
        "accuracy",
        "neg_log_loss",
        "roc_auc_ovr",
    ),
    "regression": ("neg_root_mean_squared_error", "neg_mean_absolute_error", "r2"),
}

#: The holdout metrics evaluate computes for each task (``primary_metric`` and ``thresholds``
#: keys); the first is the task's default primary metric.
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "f1", "recall", "precision", "accuracy", "log_loss"),
    "multiclass": ("f1_macro", "balanced_accuracy", "log_loss", "roc_auc_ovr", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}

#: Metrics where a smaller value is better: their thresholds are ceilings, not floors, and a
#: challenger must be lower than the champion by ``min_delta``.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})

_ALL_SCORING = tuple(dict.fromkeys(s for names in SCORING.values() for s in names))
_ALL_METRICS = tuple(dict.fromkeys(m for names in METRICS.values() for m in names))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """``data``: the label column and the validation limits of the dataset."""

    target: str = "diagnosis"
    min_rows: int = Field(100, ge=2)
    max_duplicate_rows: int = Field(0, ge=0)


class Candidate(_Section):
    """One estimator family and its grid; ``scaler`` picks the preprocessing step."""

    estimator: Literal[ESTIMATORS]
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _integral_floats_to_int(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        # Kubeflow passes run parameters through protobuf, where every number is a double:
        # n_estimators 100 arrives as 100.0, which scikit-learn rejects.
        return {
            key: [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
            for key, values in grid.items()
        }

    @model_validator(mode="after")
    def _check_grid(self) -> Candidate:
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid '{key}' of {self.estimator} is empty; list >= 1 value")
        bad = set(self.grid.get("scaler", [])) - set(SCALERS)
        if bad:
            raise ValueError(f"unknown scaler {sorted(bad)}; use one of {list(SCALERS)}")
        return self


#: ``search.strategy`` values: every candidate on all rows, or successive halving.
STRATEGIES = ("grid", "halving")


class HalvingParams(_Section):
    """``search.halving``: the budget schedule of ``HalvingGridSearchCV`` (``strategy: halving``).

    Attributes:
        factor: each round keeps ``1/factor`` of the candidates and gives them ``factor`` times
            the rows (scikit-learn's default, 3).
        min_resources: rows of the first round: ``exhaust`` (so the last round uses every
            training row, scikit-learn's default), ``smallest`` (the least that CV allows), or a
            number of rows.
    """

    factor: float = Field(3.0, gt=1.0)
    min_resources: Literal["exhaust", "smallest"] | int = "exhaust"

    @field_validator("min_resources", mode="before")
    @classmethod
    def _integral_float_to_int(cls, value: Any) -> Any:
        # Kubeflow passes numbers through protobuf as doubles: 60 arrives as 60.0
        return int(value) if isinstance(value, float) and value.is_integer() else value

    @field_validator("min_resources")
    @classmethod
    def _positive(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 2:
            raise ValueError(
                f"min_resources {value} is below 2 rows; pass exhaust, smallest or >= 2"
            )
        return value


class SearchParams(_Section):
    """``search``: holdout split, cross-validation, scoring, strategy and the candidate grids.

    ``scoring`` is a scikit-learn scorer name that must fit the dataset's task (:data:`SCORING`);
    ``None`` picks the task's default (``roc_auc``, ``f1_macro``, ``neg_root_mean_squared_error``).
    ``strategy`` is ``grid`` (``GridSearchCV``: every candidate on every fold; the only one that
    the ``search_shards`` run parameter can spread over tasks) or ``halving``
    (``HalvingGridSearchCV``, scheduled by ``halving``, in one task).
    """

    seed: int = 42
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    cv_folds: int = Field(5, ge=2, le=20)
    scoring: Literal[_ALL_SCORING] | None = None
    n_jobs: int = 1
    strategy: Literal[STRATEGIES] = "grid"
    halving: HalvingParams = HalvingParams()
    candidates: list[Candidate] = Field(min_length=1)

    def scoring_for(self, task: str) -> str:
        """The scorer name for a dataset of ``task``: ``scoring``, or the task's default.

        Raises:
            ConfigError: ``scoring`` does not fit ``task``; the message lists the ones that do.
        """
        return _for_task("search.scoring", self.scoring, task, SCORING)


class EvaluateParams(_Section):
    """``evaluate``: the metric and margin a challenger must beat, and absolute thresholds.

    Attributes:
        primary_metric: the holdout metric the champion comparison uses (:data:`METRICS` of the
            task); ``None`` picks the task's default (``roc_auc``, ``f1_macro``, ``rmse``).
        min_delta: how much better than the champion the candidate must be on the primary
            metric, in the metric's units and direction (lower for ``rmse``, ``mae``,
            ``log_loss``).
        thresholds: absolute limits on the holdout: floors for higher-is-better metrics, ceilings
            for lower-is-better ones (:data:`LOWER_IS_BETTER`).
        max_champion_drop: the champion's primary metric on the new holdout may be at most this
            fraction worse than the holdout score recorded at its promotion; beyond it the
            decision reports a likely data problem (0.1: 0.995 recorded, below 0.8955 now).
    """

    primary_metric: Literal[_ALL_METRICS] | None = None
    min_delta: float = Field(0.002, ge=0.0)
    thresholds: dict[Literal[_ALL_METRICS], float] = Field(default_factory=dict)
    max_champion_drop: float = Field(0.1, gt=0.0, lt=1.0)

    def primary_metric_for(self, task: str) -> str:
        """The primary metric for a dataset of ``task``: ``primary_metric``, or the task's default.

        Raises:
            ConfigError: the metric does not fit ``task``; the message lists the ones that do.
        """
        return _for_task("evaluate.primary_metric", self.primary_metric, task, METRICS)

    def check_task(self, task: str) -> None:
        """Check that the primary metric and every threshold fit ``task``.

        Raises:
            ConfigError: names the first value that does not fit, the task and the valid choices.
        """
        self.primary_metric_for(task)
        for name in self.thresholds:
            _for_task("evaluate.thresholds key", name, task, METRICS, default=False)


def _for_task(
    what: str,
    value: str | None,
    task: str,
    table: dict[str, tuple[str, ...]],
    default: bool = True,
) -> str:
    """``value``, or the task's default when ``None``, once checked against ``table[task]``."""
    if task not in table:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(table)}")
    valid = table[task]
    if value is None:
        return valid[0]
    if value not in valid:
        hint = f" (or leave it out for {valid[0]})" if default else ""
        raise ConfigError(
            f"{what} {value!r} does not fit a {task} dataset; use one of {', '.join(valid)}{hint}"
        )
    return value


class Params(_Section):
    """The whole ``params.yaml``: one section per pipeline step."""

    data: DataParams = DataParams()
    search: SearchParams
    evaluate: EvaluateParams = EvaluateParams()


def check_params_for_task(params: Params, task: str) -> None:
    """Check that scoring, primary metric and thresholds fit the dataset's ``task``.

    Call it where the dataset's spec is known, before any side effect (an MLflow run, a pipeline
    submission).

    Raises:
        ConfigError: names the value that does not fit, the task and the valid choices.
    """
    params.search.scoring_for(task)
    params.evaluate.check_task(task)


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a params mapping (from YAML or from pipeline arguments).

    Raises:
        ConfigError: the message names each bad key, the value received and the expectation.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} must be a mapping with sections data/search/evaluate, got {type(raw).__name__}"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}={err.get('input')!r}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"{source} is invalid: {problems}. Fix the value(s) and rerun.") from e


def read_params_file(path: Path) -> dict[str, Any]:
    """The mapping in a params file, not yet validated (a dataset's override merges into it).

    Raises:
        ConfigError: the file is missing, is not YAML, or is not a mapping.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"params file {path} does not exist; create it (see docs/pipeline.md)"
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {path} is not valid YAML ({e}); fix the syntax") from e
    if not isinstance(raw, dict):
        raise ConfigError(
            f"params file {path} must be a mapping with sections search/evaluate, got "
            f"{type(raw).__name__}"
        )
    return raw


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the schema.
    """
    return parse_params(read_params_file(path), source=str(path))
