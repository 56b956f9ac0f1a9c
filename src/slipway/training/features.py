"""Features from the dataset spec: the model's input frame and the preprocessing ColumnTransformer.

The tuned Pipeline is ``features`` (a :class:`~sklearn.compose.ColumnTransformer` built here from
the spec) then ``clf``, so imputation, scaling and one-hot encoding are refitted inside every CV
fold. The Pipeline takes a DataFrame of ``spec.feature_names`` in that order
(:func:`feature_frame`):

- ``numeric`` and ``integer`` columns as float64 (missing = NaN): a median ``SimpleImputer`` when
  the spec lets the column be empty, then the grid's scaler (standard, robust or none);
- ``boolean`` columns as float64 0/1 (any spelling the validation accepts), the most frequent
  value imputed when nullable;
- ``categorical`` columns as text (missing = ``""``): the most frequent category imputed when
  nullable, then a ``OneHotEncoder`` over the spec's categories that ignores unknown ones.

Ignored columns and the target never reach the model. Only transformers skl2onnx converts are
used, and the ColumnTransformer selects columns by position, so one float tensor (all-numeric
data) or one input per column (mixed data) both convert. Columns the spec declares non-nullable
get no imputer: validation guarantees them no gaps, and ONNX Runtime has no float64 Imputer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from slipway.data import MISSING_CATEGORY, DatasetSpec, category_text, feature_frame

# the model's input frame lives in slipway.data (promotion, below training, needs it too); these
# names stay importable from here
__all__ = [
    "MISSING_CATEGORY",
    "build_preprocessor",
    "feature_frame",
    "scaler_name",
    "target_values",
]


def target_values(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The label column: float64 for regression, the class labels as they are otherwise."""
    y = frame[spec.target]
    return y.to_numpy(dtype="float64") if spec.task == "regression" else y.to_numpy()


def build_preprocessor(spec: DatasetSpec, scaler: str = "standard") -> Any:
    """The ColumnTransformer of ``spec``'s features; ``scaler`` applies to numeric columns.

    Args:
        spec: the dataset's spec.
        scaler: ``standard``, ``robust`` or ``none`` (``slipway.params.SCALERS``).

    Returns:
        An unfitted ColumnTransformer with dense output, one transformer per group of columns
        (``numeric``, ``numeric_nullable``, ``boolean``, ``boolean_nullable``, ``categorical``,
        ``categorical_nullable``), groups without columns left out.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    position = {name: i for i, name in enumerate(spec.feature_names)}

    def columns(kinds: tuple[str, ...], nullable: bool) -> list[int]:
        return [
            position[f.name] for f in spec.features if f.kind in kinds and f.nullable is nullable
        ]

    groups: list[tuple[str, Any, list[int]]] = []
    numeric = ("numeric", "integer")
    if cols := columns(numeric, False):
        groups.append(("numeric", _scaler(scaler), cols))
    if cols := columns(numeric, True):
        steps = [("impute", SimpleImputer(strategy="median"))]
        if scaler != "none":
            steps.append(("scale", _scaler(scaler)))
        groups.append(("numeric_nullable", Pipeline(steps), cols))
    if cols := columns(("boolean",), False):
        groups.append(("boolean", "passthrough", cols))
    if cols := columns(("boolean",), True):
        groups.append(("boolean_nullable", SimpleImputer(strategy="most_frequent"), cols))
    for nullable, name in ((False, "categorical"), (True, "categorical_nullable")):
        features = [f for f in spec.features if f.kind == "categorical" and f.nullable is nullable]
        if not features:
            continue
        encoder = OneHotEncoder(
            categories=[[category_text(c) for c in f.categories or ()] for f in features],
            handle_unknown="ignore",
            sparse_output=False,
        )
        steps = [("onehot", encoder)]
        if nullable:
            imputer = SimpleImputer(missing_values=MISSING_CATEGORY, strategy="most_frequent")
            steps.insert(0, ("impute", imputer))
        groups.append((name, Pipeline(steps), [position[f.name] for f in features]))
    return ColumnTransformer(groups, remainder="drop", sparse_threshold=0.0)


def scaler_name(preprocessor: Any) -> str:
    """The scaler a :func:`build_preprocessor` result applies to numeric columns, by class name.

    ``passthrough`` when it scales nothing (``none``, or no numeric column).
    """
    for name, transformer, _ in preprocessor.transformers:
        if name == "numeric_nullable":
            transformer = transformer.steps[-1][1] if len(transformer.steps) > 1 else "passthrough"
        if name in ("numeric", "numeric_nullable"):
            return transformer if isinstance(transformer, str) else type(transformer).__name__
    return "passthrough"


def _scaler(name: str) -> Any:
    from sklearn.preprocessing import RobustScaler, StandardScaler

    return {"standard": StandardScaler(), "robust": RobustScaler(), "none": "passthrough"}[name]
