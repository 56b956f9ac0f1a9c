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

from slipway.data import DatasetSpec
from slipway.errors import DatasetValidationError

#: How a missing categorical value reaches the model (skl2onnx imputes strings, not NaN).
MISSING_CATEGORY = ""

_TRUE = frozenset({"true", "1", "1.0", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "0.0", "no", "n", "f"})


def feature_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The model's input: ``spec.feature_names`` in spec order, each in its kind's dtype.

    Args:
        frame: a table as :func:`slipway.data.load_frame` returns it (target and ignored
            columns may be present; they are left out).
        spec: the dataset's spec.

    Returns:
        A new frame: numeric, integer and boolean columns as float64 (NaN when missing),
        categorical columns as text with :data:`MISSING_CATEGORY` when missing.

    Raises:
        DatasetValidationError: a feature column is absent, or a boolean column holds a value
            that is not a boolean spelling.
    """
    absent = [name for name in spec.feature_names if name not in frame.columns]
    if absent:
        raise DatasetValidationError(
            f"the table lacks the feature column(s) {', '.join(absent)} of dataset "
            f"{spec.name!r}; add them or fix the spec's features"
        )
    columns: dict[str, Any] = {}
    for feature in spec.features:
        series = frame[feature.name]
        if feature.kind in ("numeric", "integer"):
            columns[feature.name] = _as_float(series)
        elif feature.kind == "boolean":
            columns[feature.name] = _as_zero_one(series, feature.name)
        else:
            columns[feature.name] = _as_text(series)
    return pd.DataFrame(columns, index=frame.index)


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
            categories=[[_text(c) for c in f.categories or ()] for f in features],
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


def _as_float(series: pd.Series) -> np.ndarray:
    # Int64 (from load_frame) holds pd.NA, which scikit-learn and skl2onnx do not take: NaN instead
    return pd.to_numeric(series).to_numpy(dtype="float64", na_value=np.nan)


def _as_zero_one(series: pd.Series, column: str) -> np.ndarray:
    out = np.full(len(series), np.nan)
    for i, value in enumerate(series.tolist()):
        if _missing(value):
            continue
        text = str(value).strip().lower()
        if text in _TRUE:
            out[i] = 1.0
        elif text in _FALSE:
            out[i] = 0.0
        else:
            raise DatasetValidationError(
                f"boolean column {column!r} holds {value!r}; use true/false, 1/0 or yes/no"
            )
    return out


def _as_text(series: pd.Series) -> np.ndarray:
    return np.array(
        [MISSING_CATEGORY if _missing(v) else _text(v) for v in series.tolist()], dtype=object
    )


def _text(value: Any) -> str:
    """A category as text; a whole float (an int column with gaps, read by CSV) without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
