"""The holdout split taken without copying the table: the same rows as the frame-copying way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slipway.data import (
    bound_freed_memory,
    holdout_mask,
    release_free_memory,
    split_dataset,
    take_rows,
)
from slipway.data.table import DATASET_VERSIONS, build_dataset


def _copying_split(frame: pd.DataFrame, fraction: float, seed: int, target: str):
    """The split as it was written before: hash a copy of the features, reset_index each side."""
    features = frame.drop(columns=[target])
    hashes = pd.util.hash_pandas_object(features, index=False, hash_key=f"slipway{seed:09d}"[-16:])
    in_holdout = (hashes.to_numpy(dtype=np.uint64) / float(2**64)) < fraction
    return (
        frame[~in_holdout].reset_index(drop=True),
        frame[in_holdout].reset_index(drop=True),
    )


def _mixed_frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "a": rng.standard_normal(rows),
            "label": rng.integers(0, 2, rows),
            "b": pd.array(rng.integers(0, 9, rows), dtype="Int64"),
            "c": rng.choice(["x", "y", "z"], rows).astype(object),
        },
        index=pd.RangeIndex(100, 100 + rows),  # not 0…n-1: the sides must be renumbered
    )


@pytest.mark.parametrize("seed", [0, 42])
def test_split_equals_the_frame_copying_split(seed: int) -> None:
    for frame, target in [
        (_mixed_frame(), "label"),
        (build_dataset(DATASET_VERSIONS["v2"]), "diagnosis"),
    ]:
        expected = _copying_split(frame, 0.2, seed, target)
        got = split_dataset(frame, 0.2, seed, target)
        for want, side in zip(expected, got, strict=True):
            pd.testing.assert_frame_equal(side, want)
            assert isinstance(side.index, pd.RangeIndex)
        assert 0 < len(got[1]) < len(frame)


def test_mask_does_not_depend_on_the_frame_layout() -> None:
    frame = _mixed_frame()
    consolidated = frame.copy()
    consolidated._consolidate_inplace()
    mask = holdout_mask(frame, 0.3, 7, "label")
    assert mask.dtype == bool
    assert mask.shape == (len(frame),)
    np.testing.assert_array_equal(mask, holdout_mask(consolidated, 0.3, 7, "label"))
    # the target takes no part in the hash: relabelling moves no row
    relabelled = frame.assign(label=1 - frame["label"])
    np.testing.assert_array_equal(mask, holdout_mask(relabelled, 0.3, 7, "label"))


def test_take_rows_leaves_the_frame_alone_and_warns_on_no_later_write() -> None:
    frame = _mixed_frame(50)
    before = frame.copy()
    rows = np.zeros(len(frame), dtype=bool)
    rows[[3, 10, 11]] = True
    taken = take_rows(frame, rows)
    assert list(taken.index) == [0, 1, 2]
    assert taken["a"].tolist() == frame["a"].iloc[[3, 10, 11]].tolist()
    with pd.option_context("mode.chained_assignment", "raise"):
        taken["a"] = 0.0  # a boolean getitem would have marked it a copy and raised here
    pd.testing.assert_frame_equal(frame, before)


def test_memory_release_calls_change_nothing_they_can_reach() -> None:
    frame = _mixed_frame(100)
    before = frame.copy()
    assert bound_freed_memory() in (True, False)
    release_free_memory()
    pd.testing.assert_frame_equal(frame, before)
