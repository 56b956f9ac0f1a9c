"""The dataset as a table: the bundled breast-cancer data, its versions, and the holdout split.

The dataset versions are plain functions of scikit-learn's bundled copy of the Wisconsin
breast-cancer data, so seeding them is deterministic and offline: the same bytes, and so the same
DVC hash, on every machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "diagnosis"
DATASET_NAME = "breast-cancer"
DATA_DIR = Path("data") / DATASET_NAME


@dataclass(frozen=True)
class DatasetSpec:
    """A readable dataset version name and how its rows are chosen."""

    version: str
    description: str
    rows: int | None  # None = every row

    @property
    def path(self) -> Path:
        """Path of the CSV relative to the project root (the DVC-tracked file)."""
        return DATA_DIR / f"{self.version}.csv"


DATASET_VERSIONS: dict[str, DatasetSpec] = {
    "v1": DatasetSpec("v1", "earlier collection: a fixed 350-row subset", rows=350),
    "v2": DatasetSpec("v2", "full collection: all 569 rows", rows=None),
}


def dataset_spec(version: str) -> DatasetSpec:
    """Look a readable dataset version up.

    Raises:
        DatasetVersionError: the version is unknown; the message lists the known ones.
    """
    from slipway.errors import DatasetVersionError

    try:
        return DATASET_VERSIONS[version]
    except KeyError:
        raise DatasetVersionError(
            f"unknown dataset version {version!r}; known versions: "
            f"{', '.join(DATASET_VERSIONS)} (see data/{DATASET_NAME}/)"
        ) from None


def load_breast_cancer_frame() -> pd.DataFrame:
    """The full bundled dataset with snake_case columns and ``diagnosis`` (1 = malignant)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    # scikit-learn codes malignant as 0; we make the class we want to detect the positive one
    frame[TARGET] = (1 - bunch.target).astype("int64")
    return frame


def build_dataset(spec: DatasetSpec) -> pd.DataFrame:
    """Rows of one dataset version, in a stable order."""
    full = load_breast_cancer_frame()
    if spec.rows is None:
        return full
    rows = np.sort(np.random.default_rng(0).permutation(len(full))[: spec.rows])
    return full.iloc[rows].reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV with fixed formatting (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, path)
    return path


def read_csv(path: Path) -> pd.DataFrame:
    """Read a dataset CSV as written by :func:`write_csv`, or a Parquet version (by content).

    A dataset version may be Parquet (``slipway data add``, ``slipway data synth``); readers
    that predate that (promotion) get the same frame either way.
    """
    with Path(path).open("rb") as f:
        if f.read(4) == b"PAR1":
            return pd.read_parquet(path)
    return pd.read_csv(path)


def split_dataset(
    frame: pd.DataFrame, holdout_fraction: float, seed: int, target: str = TARGET
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fixed holdout split used by search and evaluate alike.

    A row's side is a function of its feature values and the seed only (a salted 64-bit hash
    compared with ``holdout_fraction``), not of the other rows. So the split is stable across
    dataset versions: a champion trained on an earlier version never saw a row of a later
    version's holdout, which keeps the champion comparison fair. Because the hash ignores the
    label, each class is split in the same proportion (stratified in expectation; the tests check
    the class balance of the default dataset).

    A step that needs one side only takes it with :func:`holdout_mask` and :func:`take_rows`
    and so never holds the other (at 1,000,000 rows each side is a copy of its rows).

    Returns:
        ``(train, holdout)``; the same inputs always give the same rows.
    """
    in_holdout = holdout_mask(frame, holdout_fraction, seed, target)
    return take_rows(frame, ~in_holdout), take_rows(frame, in_holdout)


def holdout_mask(
    frame: pd.DataFrame, holdout_fraction: float, seed: int, target: str = TARGET
) -> np.ndarray:
    """Which rows of ``frame`` :func:`split_dataset` puts in the holdout (a boolean array).

    The hash is taken column by column over the frame's own arrays: no copy of the table
    (``frame.drop(columns=[target])`` would copy every feature column).
    """
    # a dict of Series with copy=False keeps each column's array as it is (no consolidation);
    # the row hash combines per-column hashes, so it does not depend on the frame's layout
    features = pd.DataFrame(
        {column: frame[column] for column in frame.columns if column != target}, copy=False
    )
    hashes = pd.util.hash_pandas_object(features, index=False, hash_key=f"slipway{seed:09d}"[-16:])
    return (hashes.to_numpy(dtype=np.uint64) / float(2**64)) < holdout_fraction


def take_rows(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows where ``rows`` is true, as a new frame indexed ``0 … n-1``.

    One copy of those rows; ``reset_index(drop=True)`` would copy them a second time.
    """
    # take, not frame[rows]: a boolean getitem marks the result as a copy of ``frame``, so a
    # later column assignment by the caller would warn (SettingWithCopyWarning)
    out = frame.take(np.flatnonzero(rows))
    out.index = pd.RangeIndex(len(out))
    return out
