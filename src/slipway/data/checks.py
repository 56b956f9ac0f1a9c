"""Validation generated from a dataset spec: a lazy pandera schema plus the poison checks.

The schema checks what the spec promises (columns, types, ranges, categories, nulls, the label
set, minimum rows, duplicates). The poison checks catch data that passes a schema and still
ruins a model: a constant column, a feature that leaks the label (equal to it, or predicting it
almost perfectly on its own), text in a numeric column, infinities. Every violation of both
kinds lands in one :class:`~slipway.data.report.ValidationReport`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from slipway.data.report import ValidationReport, summarise_failures
from slipway.data.spec import DatasetSpec, FeatureSpec

#: A feature that alone predicts a class label this well (training accuracy) leaks it.
LEAK_ACCURACY = 0.99
#: A feature this correlated with a regression target leaks it.
LEAK_CORRELATION = 0.999
#: Per-value purity is measured only on categoricals with at most this many values (a
#: high-cardinality column is pure per value by chance) and at least 5 rows per value.
LEAK_MAX_VALUES = 20

#: The spellings a ``boolean`` feature may use (compared case-insensitively as text).
BOOLEAN_VALUES = frozenset(
    {"true", "false", "1", "0", "1.0", "0.0", "yes", "no", "y", "n", "t", "f"}
)


def validate_with_spec(frame: pd.DataFrame, spec: DatasetSpec) -> ValidationReport:
    """Validate ``frame`` against ``spec`` lazily: every schema and poison violation in one report.

    Args:
        frame: the table as read from the file (not modified).
        spec: the dataset's spec.

    Returns:
        The report; ``report.passed`` is true when nothing was found.
    """
    import pandera.errors as pae

    frame = normalise_frame(frame, spec)
    report = ValidationReport(rows=len(frame))
    try:
        # inplace: no coercion is declared, so pandera changes nothing; without it pandera
        # copies the whole frame, then each column again (3x the table's memory at 1M rows)
        build_spec_schema(spec).validate(frame, lazy=True, inplace=True)
    except pae.SchemaErrors as e:
        report.violations = summarise_failures(_drop_check_errors(e.failure_cases))
    report.violations += poison_violations(frame, spec)
    return report


def normalise_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """A copy with lossless dtype fixes: ints in numeric columns as floats, whole floats as Int64.

    A CSV reader types a numeric column with no decimals as int64, and an integer column with an
    empty cell as float64; both are valid data for their kind, so they must not fail a dtype check.
    """
    # shallow: a column that changes is replaced in the copy (pandas never writes the original's
    # array on ``frame[column] = ...``), the others are shared instead of duplicated
    frame = frame.copy(deep=False)
    numeric = {f.name for f in spec.features if f.kind == "numeric"}
    if spec.task == "regression":
        numeric.add(spec.target)
    integer = {f.name for f in spec.features if f.kind == "integer"}
    for column in frame.columns:
        series = frame[column]
        if column in numeric and _is_int(series):
            frame[column] = series.astype("float64")
        elif column in integer and (_is_int(series) or _whole_floats(series)):
            frame[column] = series.astype("Int64")
    return frame


def build_spec_schema(spec: DatasetSpec):
    """The pandera schema that ``spec`` describes (strict: no undeclared column).

    Check names are stable (they appear in the report): ``dtype('float64')``,
    ``greater_than_or_equal_to(…)``, ``isin(…)``, ``not_nullable``, ``fewer than N rows``,
    ``more than N duplicated rows``, ``both_labels_present`` / ``all_classes_present``.
    """
    import pandera.pandas as pa

    columns = {feature.name: _feature_column(feature) for feature in spec.features}
    if spec.task == "regression":
        columns[spec.target] = pa.Column(float, nullable=False, coerce=False)
    else:
        classes = tuple(spec.classes or ())
        ints = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
        columns[spec.target] = pa.Column(
            int if ints else None, checks=pa.Check.isin(classes), nullable=False
        )
    for column in spec.ignore:
        columns[column] = pa.Column(None, nullable=True, required=False)
    used = [*spec.feature_names, spec.target]
    checks = [
        pa.Check(
            lambda df: len(df) >= spec.min_rows,
            name=f"at_least_{spec.min_rows}_rows",
            error=f"fewer than {spec.min_rows} rows",
        ),
        pa.Check(
            lambda df: duplicated_rows(df, [c for c in used if c in df]) <= spec.max_duplicate_rows,
            name=f"at_most_{spec.max_duplicate_rows}_duplicate_rows",
            error=f"more than {spec.max_duplicate_rows} duplicated rows",
        ),
    ]
    if spec.classes:
        both = len(spec.classes) == 2
        checks.append(
            pa.Check(
                lambda df: (
                    spec.target in df
                    and set(spec.classes) <= set(df[spec.target].dropna().tolist())
                ),
                name="both_labels_present" if both else "all_classes_present",
                error="a label class is missing",
            )
        )
    return pa.DataFrameSchema(columns, strict=True, checks=checks)


def duplicated_rows(frame: pd.DataFrame, columns: list[str]) -> int:
    """How many rows repeat an earlier row on ``columns`` (``DataFrame.duplicated`` counts).

    Exact, and without copying the columns: a 64-bit hash per row is combined column by column,
    and only rows whose hash repeats (all true duplicates, and a collision now and then) are
    compared for real. ``frame[columns].duplicated()`` copied the columns and held an int64
    code array per column at once: twice the table's memory on a million rows.
    """
    if not columns or frame.empty:
        return 0
    hashes = np.zeros(len(frame), dtype=np.uint64)
    for column in columns:
        column_hash = pd.util.hash_pandas_object(frame[column], index=False).to_numpy()
        hashes = hashes * np.uint64(1_000_003) ^ column_hash  # wraps modulo 2**64
    candidates = pd.Series(hashes).duplicated(keep=False).to_numpy()
    if not candidates.any():
        return 0
    # by position: the index may repeat labels (a concatenated frame)
    return int(frame.iloc[np.flatnonzero(candidates)][columns].duplicated().sum())


def poison_violations(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, str]]:
    """Constant columns, label leaks, text in numeric columns and infinities, one line each.

    Args:
        frame: the table after :func:`normalise_frame`.
        spec: the dataset's spec (says which columns are numeric and what the target is).
    """
    out: list[dict[str, str]] = []
    target = frame.get(spec.target)
    codes = _label_codes(target) if target is not None and spec.task != "regression" else None
    for feature in spec.features:
        if feature.name not in frame:
            continue  # the schema already reports the missing column
        series = frame[feature.name]
        if len(frame) > 1 and series.nunique(dropna=False) <= 1:
            out.append(_line(feature.name, "constant_column", f"one value: {series.iloc[0]}"))
            continue
        if feature.kind in ("numeric", "integer"):
            out += _numeric_poison(feature.name, series)
        if target is not None:
            out += _leak(feature, series, target, spec, codes)
    if target is not None and spec.task == "regression":
        out += _numeric_poison(spec.target, target)
    return out


def _feature_column(feature: FeatureSpec):
    import pandera.pandas as pa

    checks = []
    if feature.min is not None:
        checks.append(pa.Check.ge(feature.min))
    if feature.max is not None:
        checks.append(pa.Check.le(feature.max))
    if feature.kind == "numeric":
        return pa.Column(float, checks=checks, nullable=feature.nullable, coerce=False)
    if feature.kind == "integer":
        return pa.Column("Int64", checks=checks, nullable=feature.nullable, coerce=False)
    if feature.kind == "boolean":
        check = pa.Check(
            lambda s: s.map(lambda v: str(v).strip().lower() in BOOLEAN_VALUES).astype(bool),
            name="boolean_values",
        )
        return pa.Column(None, checks=check, nullable=feature.nullable)
    allowed = {str(c) for c in feature.categories or ()}
    check = pa.Check(
        lambda s: s.astype(str).isin(allowed),
        name=f"isin({sorted(allowed)})",
    )
    return pa.Column(None, checks=check, nullable=feature.nullable)


def _numeric_poison(column: str, series: pd.Series) -> list[dict[str, str]]:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        parsed = pd.to_numeric(series, errors="coerce")
        text = series[parsed.isna() & series.notna()]
        if len(text):
            return [_line(column, "text_in_numeric_column", _few(text.tolist()), text.index)]
        series = parsed
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return []
    values = series.astype("float64")
    inf = values[np.isinf(values.to_numpy(na_value=np.nan))]
    if len(inf):
        return [_line(column, "infinite_values", _few(inf.tolist()), inf.index)]
    return []


def _label_codes(target: pd.Series) -> pd.Series:
    """The label's text form (as the leak checks compare it) as integer codes, NaN kept."""
    codes, _ = pd.factorize(target.astype(str).where(target.notna()))
    return pd.Series(codes, index=target.index).where(target.notna())


def _leak(
    feature: FeatureSpec,
    series: pd.Series,
    target: pd.Series,
    spec: DatasetSpec,
    codes: pd.Series | None = None,
) -> list[dict[str, str]]:
    both = pd.DataFrame({"x": series, "y": target}).dropna()
    if len(both) < 10 or both["y"].nunique() < 2:
        return []
    if _equals_label(both["x"], both["y"]):
        return [_line(feature.name, "equals_label", "every value equals the label")]
    if spec.task == "regression":
        x = pd.to_numeric(both["x"], errors="coerce").astype("float64")
        y = pd.to_numeric(both["y"], errors="coerce").astype("float64")
        finite = np.isfinite(x) & np.isfinite(y)
        x, y = x[finite], y[finite]
        if x.nunique() < 2 or y.nunique() < 2:
            return []
        corr = float(np.corrcoef(x, y)[0, 1])
        if math.isfinite(corr) and abs(corr) >= LEAK_CORRELATION:
            return [_line(feature.name, "leaks_label", f"correlation {corr:.4f} with the label")]
        return []
    # integer codes of the label's text: the same classes, without a string per row per feature
    # by position (``both`` keeps the rows where neither is missing, in order): the index may
    # repeat labels
    kept = (series.notna() & target.notna()).to_numpy()
    codes = codes if codes is not None else _label_codes(target)
    labels = pd.Series(codes.to_numpy()[kept], index=both.index).astype("int64")
    baseline = labels.value_counts(normalize=True).iloc[0]
    if baseline >= LEAK_ACCURACY:
        return []  # one class is ≥ 99 % of the rows: every feature "predicts" it
    accuracy = _single_feature_accuracy(feature, both["x"], labels)
    if accuracy is not None and accuracy >= LEAK_ACCURACY:
        return [
            _line(
                feature.name,
                "leaks_label",
                f"alone predicts the label with accuracy {accuracy:.3f} (majority class "
                f"{baseline:.3f})",
            )
        ]
    return []


def _equals_label(x: pd.Series, y: pd.Series) -> bool:
    """Whether every value's text equals the label's (numbers compared as numbers first).

    Equal text implies equal numbers, so numeric columns whose values differ anywhere are
    answered without formatting a string per row; only a candidate is confirmed as text.
    """
    numeric = pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y)
    if numeric and not (x.to_numpy() == y.to_numpy()).all():
        return False
    return bool((x.astype(str) == y.astype(str)).all())


def _single_feature_accuracy(feature: FeatureSpec, x: pd.Series, labels: pd.Series) -> float | None:
    """Training accuracy of the best one-feature predictor: a stump, or per-value majority."""
    if feature.kind in ("numeric", "integer"):
        from sklearn.tree import DecisionTreeClassifier

        values = pd.to_numeric(x, errors="coerce").astype("float64").to_numpy()
        keep = np.isfinite(values)
        if keep.sum() < 10:
            return None
        # one split per class boundary: a threshold rule, not a lookup table that memorises rows
        stump = DecisionTreeClassifier(max_leaf_nodes=max(2, labels.nunique()), random_state=0)
        stump.fit(values[keep].reshape(-1, 1), labels[keep])
        return float(stump.score(values[keep].reshape(-1, 1), labels[keep]))
    values = x.astype(str)
    distinct = values.nunique()
    if distinct > LEAK_MAX_VALUES or len(values) < 5 * distinct:
        return None
    majority = pd.crosstab(values, labels).max(axis=1).sum()
    return float(majority / len(values))


def _drop_check_errors(cases: pd.DataFrame) -> pd.DataFrame:
    """Drop a range check's TypeError on a column whose dtype already failed (noise, not news)."""
    dtype_failed = set(cases.loc[cases["check"].astype(str).str.startswith("dtype("), "column"])
    noise = cases["column"].isin(dtype_failed) & cases["failure_case"].astype(str).str.contains(
        r"^\w+Error\(", regex=True
    )
    return cases[~noise]


def _is_int(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _whole_floats(series: pd.Series) -> bool:
    if not pd.api.types.is_float_dtype(series):
        return False
    values = series.dropna().to_numpy()
    return bool(np.isfinite(values).all() and (values == np.round(values)).all())


def _few(values: list) -> str:
    return ", ".join(str(v) for v in values[:3]) + (" …" if len(values) > 3 else "")


def _line(column: str, check: str, failure: str, index=()) -> dict[str, str]:
    rows = [str(i) for i in list(index)[:5]]
    return {
        "column": column,
        "check": check,
        "failure": failure,
        "rows": (", ".join(rows) + (" …" if len(index) > 5 else "")) or "-",
    }
