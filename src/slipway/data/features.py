"""The model's input frame from the dataset spec: every feature in its kind's dtype.

Training fits on it, evaluation scores on it, and promotion checks the ONNX copy and records the
training statistics on it, so it lives here, below all three: ``spec.feature_names`` in spec
order; numeric and integer columns as float64 (missing = NaN); boolean columns as float64 0/1;
categorical columns as text, :data:`MISSING_CATEGORY` when missing (skl2onnx imputes strings,
not NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from slipway.data.spec import DatasetSpec
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
        [MISSING_CATEGORY if _missing(v) else category_text(v) for v in series.tolist()],
        dtype=object,
    )


def category_text(value: Any) -> str:
    """A category as text; a whole float (an int column with gaps, read by CSV) without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
