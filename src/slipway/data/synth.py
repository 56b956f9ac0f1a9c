"""A deterministic synthetic table with a known signal, to measure every step at scale.

``slipway data synth --rows N --dataset NAME`` writes ``data/<NAME>/<version>.parquet`` in
chunks of :data:`CHUNK_ROWS` rows (one Parquet row group each, so memory stays bounded at any
``N``), writes its spec and tracks and pushes it like ``slipway data add``
(:func:`slipway.data.intake.store_version`).

The rows: numeric features ``x00 …`` drawn from a standard normal, a few categorical features
``c0 …`` over ``a`` to ``d``, and a binary ``label`` drawn from a logistic model over a fixed
subset (:data:`WEIGHTS` on the first five numeric features, :data:`CATEGORY_EFFECT` on ``c0``).
Every other feature is noise. The model's own logit ranks the rows with the AUC an ideal
classifier reaches (about 0.85, :func:`oracle_scores`); a logistic regression with one-hot
categories gets close to it. Chunk ``k`` draws from ``numpy.random.default_rng([seed, k])``,
so the same arguments give byte-identical files (with the same pyarrow).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slipway.data.spec import DatasetSpec, FeatureSpec, dump_dataset_spec, spec_path
from slipway.errors import DatasetSpecError

#: Rows per Parquet row group, and per chunk held in memory while writing.
CHUNK_ROWS = 65_536
#: The label column.
TARGET = "label"
#: The categories of every categorical feature.
CATEGORIES = ("a", "b", "c", "d")
#: Logistic weights on ``x00 … x04`` (the rest of the numeric features are noise).
WEIGHTS = (1.2, -0.9, 0.7, 0.5, -0.4)
#: Logit added per category of ``c0``.
CATEGORY_EFFECT = {"a": -0.6, "b": 0.0, "c": 0.4, "d": 0.8}
#: Logit intercept (about 47 % positive rows).
INTERCEPT = -0.3
MIN_FEATURES = 5  # the five weighted numeric features

_HEADER = (
    "Synthetic table written by `slipway data synth` (docs/datasets.md): x00-x04 and c0\n"
    "carry the signal, every other feature is noise. Rewritten identically by the command."
)


@dataclass(frozen=True)
class SynthLayout:
    """Which columns a synthetic table has: numeric ``x00 …`` then categorical ``c0 …``."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, features: int, categorical: int | None = None) -> SynthLayout:
        """The layout of ``features`` features, ``categorical`` of them categorical.

        Args:
            features: how many features in all.
            categorical: how many are categorical; ``None``: one in eight, at least one.
                ``0`` gives an all-numeric table (``c0``'s share of the signal is then absent).

        Raises:
            DatasetSpecError: fewer than five numeric features would be left, or a negative
                ``categorical``.
        """
        n_cat = max(1, features // 8) if categorical is None else categorical
        if n_cat < 0 or features - n_cat < MIN_FEATURES:
            raise DatasetSpecError(
                f"--features {features} with --categorical {n_cat} is too few for the synthetic "
                f"signal; pass at least {MIN_FEATURES} numeric features (features minus "
                "categorical) and a categorical count of 0 or more"
            )
        width = max(2, len(str(features - n_cat - 1)))
        numeric = tuple(f"x{i:0{width}d}" for i in range(features - n_cat))
        return cls(numeric, tuple(f"c{i}" for i in range(n_cat)))

    @property
    def columns(self) -> list[str]:
        """Every column in file order, the label last."""
        return [*self.numeric, *self.categorical, TARGET]


def synth_spec(
    name: str, rows: int, features: int = 30, categorical: int | None = None
) -> DatasetSpec:
    """The spec of the table :func:`write_synthetic_table` writes.

    Args:
        name: the dataset's name.
        rows: the table's rows (``min_rows`` is 100, or ``rows`` when smaller).
        features: how many features.
        categorical: how many of them are categorical (:meth:`SynthLayout.of`).
    """
    layout = SynthLayout.of(features, categorical)
    return DatasetSpec(
        name=name,
        task="binary",
        target=TARGET,
        classes=[0, 1],
        positive_class=1,
        features=[
            *(FeatureSpec(name=c, kind="numeric") for c in layout.numeric),
            *(
                FeatureSpec(name=c, kind="categorical", categories=list(CATEGORIES))
                for c in layout.categorical
            ),
        ],
        min_rows=min(100, rows),
        max_duplicate_rows=0,
    )


def synth_chunks(
    rows: int, features: int = 30, seed: int = 0, categorical: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """The table as column arrays, :data:`CHUNK_ROWS` rows at a time (the last one shorter).

    Raises:
        DatasetSpecError: ``rows`` < 1 or too few ``features``.
    """
    check_rows(rows)
    layout = SynthLayout.of(features, categorical)
    categories = np.array(CATEGORIES, dtype=object)
    effect = np.array([CATEGORY_EFFECT[c] for c in CATEGORIES])
    for k, start in enumerate(range(0, rows, CHUNK_ROWS)):
        n = min(CHUNK_ROWS, rows - start)
        rng = np.random.default_rng([seed, k])
        x = rng.standard_normal((n, len(layout.numeric)))
        codes = rng.integers(0, len(CATEGORIES), size=(n, len(layout.categorical)))
        logit = INTERCEPT + x[:, : len(WEIGHTS)] @ np.array(WEIGHTS)
        if layout.categorical:
            logit += effect[codes[:, 0]]
        label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        chunk = {name: x[:, i] for i, name in enumerate(layout.numeric)}
        chunk |= {name: categories[codes[:, i]] for i, name in enumerate(layout.categorical)}
        chunk[TARGET] = label
        yield chunk


def write_synthetic_table(
    path: Path, rows: int, features: int = 30, seed: int = 0, categorical: int | None = None
) -> Path:
    """Write the synthetic table to ``path`` as Parquet, one row group per chunk.

    Memory stays at one chunk (:data:`CHUNK_ROWS` rows) whatever ``rows`` is.

    Raises:
        DatasetSpecError: ``rows`` < 1 or too few ``features`` (nothing is written).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_rows(rows)
    layout = SynthLayout.of(features, categorical)
    schema = pa.schema(
        [
            *(pa.field(c, pa.float64(), nullable=False) for c in layout.numeric),
            *(pa.field(c, pa.string(), nullable=False) for c in layout.categorical),
            pa.field(TARGET, pa.int64(), nullable=False),
        ]
    )
    with pq.ParquetWriter(str(path), schema, compression="snappy") as writer:
        for chunk in synth_chunks(rows, features, seed, categorical):
            writer.write_table(pa.table(chunk, schema=schema), row_group_size=CHUNK_ROWS)
    return Path(path)


def oracle_scores(frame) -> np.ndarray:
    """The generating model's logit for each row: the best ranking any classifier can reach."""
    effect = frame["c0"].map(CATEGORY_EFFECT).to_numpy(dtype=float) if "c0" in frame else 0.0
    weighted = frame[[f"x{i:0{_width(frame)}d}" for i in range(len(WEIGHTS))]].to_numpy()
    return INTERCEPT + weighted @ np.array(WEIGHTS) + effect


def check_rows(rows: int) -> None:
    """Refuse a table without rows.

    Raises:
        DatasetSpecError: ``rows`` < 1.
    """
    if rows < 1:
        raise DatasetSpecError(
            f"--rows {rows} asks for a table without rows; pass a positive number, e.g. "
            "--rows 100000"
        )


def synth_dataset(  # noqa: PLR0913 - the command's options and the DVC coordinates
    name: str,
    rows: int,
    project_dir: Path,
    remote_url: str,
    endpoint_url: str | None = None,
    features: int = 30,
    seed: int = 0,
    version: str | None = None,
    categorical: int | None = None,
):
    """Write a synthetic version of dataset ``name``, its spec, and track and push it with DVC.

    Every argument is checked before anything is written; a failure after that removes what was
    written (:func:`slipway.data.intake.store_version`). The spec is written when the dataset has
    none; an existing spec must be the one this table has (same features), or nothing happens.

    Args:
        name: the dataset's name (its folder under ``data/``).
        rows: how many rows (≥ 1).
        project_dir: the DVC project.
        remote_url: DVC remote (folder or ``s3://``).
        endpoint_url: S3 endpoint override.
        features: how many features (≥ :data:`MIN_FEATURES`); one in eight is categorical.
        seed: the random seed; the same arguments give the same file (same md5).
        version: the version name; the next ``v<N>`` when ``None``.
        categorical: how many features are categorical; ``None``: one in eight.

    Returns:
        The :class:`~slipway.data.intake.AddedDataset` (the spec is never a draft).

    Raises:
        DatasetSpecError: ``rows`` < 1, too few features, a malformed name, or an existing spec
            that describes another table.
        DatasetVersionError: the version exists already or is malformed.
        RemoteUnavailableError: the push failed (everything written was removed).
    """
    import re

    from slipway.data.intake import AddedDataset, new_version_name, store_version
    from slipway.data.spec import NAME_PATTERN, load_dataset_spec

    check_rows(rows)
    if not re.match(NAME_PATTERN, name):
        raise DatasetSpecError(
            f"dataset name {name!r} is not a folder name slipway accepts; use lower-case "
            "letters, digits, '-' and '_' (e.g. 'synth-1m')"
        )
    project_dir = Path(project_dir)
    spec = synth_spec(name, rows, features, categorical)
    spec_file = spec_path(project_dir, name)
    existing = load_dataset_spec(spec_file) if spec_file.exists() else None
    if existing is not None and _shape_of(existing) != _shape_of(spec):
        raise DatasetSpecError(
            f"{spec_file} describes another table (task {existing.task}, target "
            f"{existing.target!r}, {len(existing.features)} features); pass another --dataset, "
            f"or --features {len(existing.features)} if it is a synthetic one"
        )
    folder = project_dir / "data" / name
    version = new_version_name(folder, name, version)
    ref = store_version(
        project_dir,
        remote_url,
        endpoint_url,
        folder / f"{version}.parquet",
        lambda tmp: write_synthetic_table(tmp, rows, features, seed, categorical),
        (rows, features + 1),
        after=None if existing is not None else lambda: _write_spec(spec, spec_file),
    )
    return AddedDataset(
        name=name,
        ref=ref,
        rows=rows,
        columns=features + 1,
        spec_path=spec_file,
        spec_drafted=False,
    )


def _shape_of(spec: DatasetSpec) -> tuple:
    """What must agree between two synthetic specs (``min_rows`` depends on the rows)."""
    return (spec.task, spec.target, spec.classes, spec.features, spec.ignore)


def _write_spec(spec: DatasetSpec, path: Path) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_dataset_spec(spec, header=_HEADER), encoding="utf-8")
    os.replace(tmp, path)


def _width(frame) -> int:
    return len(next(c for c in frame.columns if c.startswith("x"))) - 1
