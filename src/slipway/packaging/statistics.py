"""Training statistics recorded in a package's manifest: per feature (drift) and of the target.

Every feature's entry has its ``kind`` and ``missing`` (the share of training rows without a
value); the distribution (``fractions``) is over the rows that have one, so it sums to 1:

- ``numeric``/``integer``: ``edges`` (the inner decile cut points of the present values) and the
  ``len(edges) + 1`` ``fractions`` of the bins they make (``side="right"``, as the server's PSI
  bins them), plus ``mean``, ``std``, ``min``, ``max`` (``None`` when no row has a value);
- ``boolean``: ``true_fraction``, and ``edges`` ``[0.5]`` with ``fractions`` ``[false, true]``,
  the numeric shape, so a 0/1 column bins like any number;
- ``categorical``: ``categories`` (as text, the spec's order), their ``fractions``, and
  ``other``, the share of present values outside the spec's categories (validation keeps it 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas costs ~1.5 s to import; the model server does not need it
    import pandas as pd

    from slipway.data import DatasetSpec

PSI_BINS = 10
#: The target quantiles a regression package records.
TARGET_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def training_statistics(
    features: pd.DataFrame, bins: int = PSI_BINS, spec: DatasetSpec | None = None
) -> dict[str, dict[str, Any]]:
    """Per-feature statistics of the training rows, for drift checks (PSI) when serving.

    Args:
        features: the training rows as the model takes them
            (:func:`slipway.data.feature_frame`): numbers as float64 with NaN, categoricals as
            text with ``""`` for missing.
        bins: the number of quantile bins of a numeric feature (fewer when values repeat).
        spec: the dataset's spec, for each feature's kind; ``None`` treats every column as
            numeric (a package built without a spec).

    Returns:
        ``{feature: statistics}`` in column order (the module docstring lists the keys).
    """
    from slipway.data import category_text

    kinds = {f.name: f for f in spec.features} if spec is not None else {}
    stats: dict[str, dict[str, Any]] = {}
    for name in features.columns:
        feature = kinds.get(name)
        kind = feature.kind if feature is not None else "numeric"
        column = features[name]
        if kind == "categorical":
            categories = [category_text(c) for c in feature.categories or ()]
            stats[name] = _categorical(column.to_numpy(dtype=object), categories)
        elif kind == "boolean":
            stats[name] = _boolean(column.to_numpy(dtype=float))
        else:
            stats[name] = {"kind": kind, **_numeric(column.to_numpy(dtype=float), bins)}
    return stats


def target_statistics(
    target: Sequence[Any] | np.ndarray, spec: DatasetSpec, classes: Sequence[Any] | None = None
) -> dict[str, Any]:
    """The training target's distribution, for the prediction-drift KPIs.

    Args:
        target: the training labels (or values, for regression).
        spec: the dataset's spec (its task and positive class).
        classes: the class order of the model's probabilities (``classes_``); default the
            spec's classes.

    Returns:
        Classification: ``classes`` and their ``fractions``, and for binary also
        ``positive_class`` and ``positive_rate``. Regression: ``mean``, ``std``, ``min``,
        ``max`` and ``quantiles`` (``{"0.05": …, …, "0.95": …}``).
    """
    if spec.task == "regression":
        values = np.asarray(target, dtype=float)
        return {
            "task": spec.task,
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
            "quantiles": {str(q): float(np.quantile(values, q)) for q in TARGET_QUANTILES},
        }
    labels = np.asarray(target, dtype=object)
    order = [plain(c) for c in (classes if classes is not None else spec.classes or ())]
    fractions = [float(np.mean(labels == c)) if len(labels) else 0.0 for c in order]
    out: dict[str, Any] = {"task": spec.task, "classes": order, "fractions": fractions}
    if spec.task == "binary":
        out["positive_class"] = plain(spec.positive_class)
        out["positive_rate"] = fractions[order.index(out["positive_class"])]
    return out


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON takes (``np.int64(1)`` -> ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric(values: np.ndarray, bins: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    missing = _share(len(values) - len(present), len(values))
    if not len(present):
        empty = dict.fromkeys(("mean", "std", "min", "max"))
        return {**empty, "edges": [], "fractions": [1.0], "missing": missing}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {
        "mean": float(present.mean()),
        "std": float(present.std()),
        "min": float(present.min()),
        "max": float(present.max()),
        "edges": [float(e) for e in edges],
        "fractions": [float(c) for c in counts / counts.sum()],
        "missing": missing,
    }


def _boolean(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    true = float(present.mean()) if len(present) else 0.0
    return {
        "kind": "boolean",
        "true_fraction": true,
        "edges": [0.5],
        "fractions": [1.0 - true, true],
        "missing": _share(len(values) - len(present), len(values)),
    }


def _categorical(values: np.ndarray, categories: list[str]) -> dict[str, Any]:
    from slipway.data import MISSING_CATEGORY

    present = values[values != MISSING_CATEGORY]
    known = np.isin(present, categories)
    return {
        "kind": "categorical",
        "categories": categories,
        "fractions": [_share(int(np.sum(present == c)), len(present)) for c in categories],
        "other": _share(int(np.sum(~known)), len(present)),
        "missing": _share(len(values) - len(present), len(values)),
    }


def _share(count: int, total: int) -> float:
    return float(count / total) if total else 0.0
