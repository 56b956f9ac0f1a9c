"""Draft a dataset spec from the data: kinds, ranges, categories, nulls and the task.

The draft is a starting point for a person to review: ranges are the observed ones, the
positive class of a binary target is a guess (the rarer class), and text columns with many
distinct values are put under ``ignore``. :func:`write_draft_spec` never replaces a spec that
is already there unless asked to.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from slipway.data.spec import (
    DatasetSpec,
    FeatureSpec,
    Task,
    dump_dataset_spec,
    parse_dataset_spec,
    spec_path,
)
from slipway.errors import DatasetSpecError

#: A text column with at most this many distinct values is categorical; more is ignored (ids,
#: free text) until a person decides otherwise.
MAX_CATEGORIES = 50
#: A numeric target with at most this many distinct whole values is a class label.
MAX_CLASSES = 10

_BOOLEAN_PAIRS = [
    {"true", "false"},
    {"yes", "no"},
    {"y", "n"},
    {"t", "f"},
]

DRAFT_HEADER = (
    "draft: review and commit.\n"
    "Written by `slipway data infer-spec` from the data: ranges are the observed ones, the\n"
    "positive class is a guess; check every field (docs/datasets.md), then delete this comment."
)


def infer_spec(
    frame: pd.DataFrame, name: str, target: str, task: Task | None = None
) -> DatasetSpec:
    """Draft the spec of ``frame``: one feature per column, the task from the target.

    Args:
        frame: the table as read from the file.
        name: the dataset's name (its folder under ``data/``).
        target: the label column.
        task: ``binary``, ``multiclass`` or ``regression``; inferred from the target when
            ``None`` (a few distinct labels → classification, many numeric values → regression).

    Raises:
        DatasetSpecError: the target is missing, empty, or does not fit the task.
    """
    if target not in frame.columns:
        raise DatasetSpecError(
            f"target column {target!r} is not in the data (columns: {_few(list(frame.columns))}); "
            "pass --target with one of them"
        )
    labels = frame[target].dropna()
    if labels.empty:
        raise DatasetSpecError(f"target column {target!r} has no values; fill it or pick another")
    task = task or _infer_task(labels, target)
    features: list[FeatureSpec] = []
    ignore: list[str] = []
    for column in frame.columns:
        if column == target:
            continue
        feature = _infer_feature(str(column), frame[column])
        if feature is None:
            ignore.append(str(column))
        else:
            features.append(feature)
    if not features:
        raise DatasetSpecError(
            f"the data has no usable feature column besides target {target!r}; add feature columns"
        )
    classes = positive = None
    if task != "regression":
        classes = sorted({_native(v) for v in labels.tolist()}, key=lambda v: (str(type(v)), v))
        if task == "binary" and len(classes) != 2:
            raise DatasetSpecError(
                f"target {target!r} has {len(classes)} distinct values ({_few(classes)}), not 2; "
                "pass --task multiclass or --task regression"
            )
        if task == "binary":
            positive = _positive_class(labels, classes)
    elif not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raise DatasetSpecError(
            f"target {target!r} holds text ({_few(labels.unique().tolist())}), so it cannot be a "
            "regression target; pass --task binary or --task multiclass"
        )
    used = frame.drop(columns=ignore)
    return parse_dataset_spec(
        {
            "name": name,
            "task": task,
            "target": target,
            "classes": classes,
            "positive_class": positive,
            "features": [f.model_dump() for f in features],
            "ignore": ignore,
            "min_rows": max(1, min(100, len(frame))),
            "max_duplicate_rows": int(used.duplicated().sum()),
        },
        f"the spec inferred for {name}",
    )


def write_draft_spec(spec: DatasetSpec, project_dir: Path, force: bool = False) -> Path:
    """Write ``spec`` to ``data/<name>/dataset.yaml`` as a draft (temp name, then rename).

    Raises:
        DatasetSpecError: a spec is already there and ``force`` is false.
    """
    path = spec_path(project_dir, spec.name)
    if path.exists() and not force:
        raise DatasetSpecError(
            f"{path} already exists and is never overwritten silently; review it by hand, or "
            "pass --force to replace it with a new draft"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_dataset_spec(spec, header=DRAFT_HEADER), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _infer_task(labels: pd.Series, target: str) -> Task:
    distinct = labels.nunique()
    if pd.api.types.is_bool_dtype(labels) or not pd.api.types.is_numeric_dtype(labels):
        if distinct > MAX_CATEGORIES:
            raise DatasetSpecError(
                f"target {target!r} is text with {distinct} distinct values, too many for "
                "classes; pass --task, or pick another target"
            )
        return "binary" if distinct == 2 else "multiclass"
    whole = bool((labels.astype("float64") == np.round(labels.astype("float64"))).all())
    if whole and distinct <= MAX_CLASSES:
        return "binary" if distinct == 2 else ("multiclass" if distinct > 2 else "regression")
    return "regression"


def _infer_feature(name: str, series: pd.Series) -> FeatureSpec | None:
    nullable = bool(series.isna().any())
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series) or _boolean_like(values):
        return FeatureSpec(name=name, kind="boolean", nullable=nullable)
    if pd.api.types.is_numeric_dtype(series):
        floats = values.astype("float64")
        finite = floats[np.isfinite(floats)]
        whole = pd.api.types.is_integer_dtype(series) or (
            len(finite) > 0 and bool((finite == np.round(finite)).all())
        )
        low, high = (finite.min(), finite.max()) if len(finite) else (None, None)
        if whole:
            return FeatureSpec(
                name=name,
                kind="integer",
                nullable=nullable,
                min=_bound(low, int),
                max=_bound(high, int),
            )
        return FeatureSpec(
            name=name, kind="numeric", nullable=nullable, min=_bound(low), max=_bound(high)
        )
    distinct = sorted({str(v) for v in values.tolist()})
    if not distinct or len(distinct) > MAX_CATEGORIES:
        return None  # an id, a timestamp or free text: ignored until a person says otherwise
    return FeatureSpec(name=name, kind="categorical", nullable=nullable, categories=distinct)


def _boolean_like(values: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(values):
        return set(values.unique().tolist()) == {0, 1}
    text = {str(v).strip().lower() for v in values.unique().tolist()}
    return any(text == pair for pair in _BOOLEAN_PAIRS)


def _positive_class(labels: pd.Series, classes: list):
    """1 or True when the labels are 0/1 or booleans; otherwise the rarer class (a guess)."""
    kinds = {type(c) for c in classes}
    if kinds == {bool}:
        return True
    if kinds == {int} and set(classes) == {0, 1}:
        return 1
    counts = labels.map(_native).value_counts()
    return _native(counts.index[-1])


def _bound(value, cast=float):
    if value is None or not math.isfinite(float(value)):
        return None
    return cast(value) if cast is int else float(value)


def _native(value):
    """Turn numpy scalars into plain Python values (for YAML and pydantic's strict mode)."""
    return value.item() if isinstance(value, np.generic) else value


def _few(values: list) -> str:
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (f" … ({len(values)} in all)" if len(values) > 8 else "")
