"""Each step's side of the holdout split, read from the file: the rows split_dataset gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slipway.data import breast_cancer_spec, load_frame, split_dataset
from slipway.data.table import DATASET_VERSIONS, build_dataset
from slipway.params import SearchParams
from slipway.training.features import feature_frame, target_values
from slipway.training.rows import holdout_rows, training_features, training_rows


def test_sides_read_from_the_file_equal_split_dataset(tmp_path: Path) -> None:
    path = tmp_path / "v1.csv"
    build_dataset(DATASET_VERSIONS["v1"]).to_csv(path, index=False)
    spec = breast_cancer_spec()
    params = SearchParams.model_validate(
        {
            "seed": 7,
            "holdout_fraction": 0.25,
            "candidates": [{"estimator": "logistic_regression", "grid": {"C": [1.0]}}],
        }
    )
    train, holdout = split_dataset(
        load_frame(path, spec), params.holdout_fraction, params.seed, spec.target
    )
    pd.testing.assert_frame_equal(training_rows(path, spec, params), train)
    pd.testing.assert_frame_equal(holdout_rows(path, spec, params), holdout)
    x, y = training_features(path, spec, params)
    pd.testing.assert_frame_equal(x, feature_frame(train, spec))
    np.testing.assert_array_equal(y, target_values(train, spec))
    assert len(x) + len(holdout) == len(load_frame(path, spec))
