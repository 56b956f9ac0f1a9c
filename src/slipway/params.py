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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """``data``: the label column and the validation limits of the dataset."""

    target: str = "diagnosis"
    min_rows: int = Field(100, ge=2)
    max_duplicate_rows: int = Field(0, ge=0)


class Candidate(_Section):
    """One estimator family and its grid; ``scaler`` picks the preprocessing step."""

    estimator: Literal["logistic_regression", "random_forest", "gradient_boosting"]
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


class SearchParams(_Section):
    """``search``: holdout split, cross-validation, scoring and the candidate grids."""

    seed: int = 42
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    cv_folds: int = Field(5, ge=2, le=20)
    scoring: Literal["accuracy", "precision", "recall", "f1", "roc_auc", "neg_log_loss"] = "roc_auc"
    n_jobs: int = 1
    candidates: list[Candidate] = Field(min_length=1)


class EvaluateParams(_Section):
    """``evaluate``: the metric and margin a challenger must beat, and absolute floors."""

    primary_metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc"] = "roc_auc"
    min_delta: float = Field(0.002, ge=0.0)
    thresholds: dict[Literal["accuracy", "precision", "recall", "f1", "roc_auc"], float] = Field(
        default_factory=dict
    )


class Params(_Section):
    """The whole ``params.yaml``: one section per pipeline step."""

    data: DataParams = DataParams()
    search: SearchParams
    evaluate: EvaluateParams = EvaluateParams()


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


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the schema.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"params file {path} does not exist; create it (see docs/pipeline.md)"
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {path} is not valid YAML: {e}") from e
    return parse_params(raw, source=str(path))
