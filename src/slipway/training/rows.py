"""One side of the fixed holdout split, read from a dataset file without holding the other.

Search fits on the training rows, evaluate scores the holdout: each takes only its side
(:func:`~slipway.data.holdout_mask`, :func:`~slipway.data.take_rows`), and the whole table is
released as soon as that side is copied out of it. At 1,000,000 rows by 30 features the table is
~240 MB in memory; holding it beside both sides (``split_dataset``) costs twice that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slipway.data import (
    DatasetSpec,
    bound_freed_memory,
    feature_frame,
    holdout_mask,
    load_frame,
    release_free_memory,
    take_rows,
)
from slipway.params import SearchParams
from slipway.training.features import target_values


def training_rows(path: Path, spec: DatasetSpec, params: SearchParams) -> pd.DataFrame:
    """The training side of ``split_dataset(load_frame(path, spec), …)``, the same rows.

    Args:
        path: the dataset version's file (CSV or Parquet).
        spec: the dataset's spec.
        params: the ``search`` section (holdout fraction and seed).
    """
    return _side(path, spec, params, holdout=False)


def training_features(
    path: Path, spec: DatasetSpec, params: SearchParams
) -> tuple[pd.DataFrame, np.ndarray]:
    """The training rows as the model's input and target; nothing else of the table is kept.

    Returns:
        ``(x, y)``: :func:`~slipway.data.feature_frame` and
        :func:`~slipway.training.features.target_values` of :func:`training_rows`.
    """
    train = training_rows(path, spec, params)
    return feature_frame(train, spec), target_values(train, spec)


def holdout_rows(path: Path, spec: DatasetSpec, params: SearchParams) -> pd.DataFrame:
    """The holdout side of ``split_dataset(load_frame(path, spec), …)``, the same rows.

    Args:
        path: the dataset version's file (CSV or Parquet).
        spec: the dataset's spec.
        params: the ``search`` section (holdout fraction and seed).
    """
    return _side(path, spec, params, holdout=True)


def _side(path: Path, spec: DatasetSpec, params: SearchParams, holdout: bool) -> pd.DataFrame:
    bound_freed_memory()
    frame = load_frame(path, spec)
    mask = holdout_mask(frame, params.holdout_fraction, params.seed, spec.target)
    rows = take_rows(frame, mask if holdout else ~mask)
    del frame
    release_free_memory()  # the table's pages, kept by Arrow's pool and the heap
    return rows
