"""The run's dataset input records the schema MLflow infers from the whole table.

``mlflow_dataset`` lets MLflow infer it from ``schema_rows`` of the table (the first row, and
the first missing and first present value of each column with a missing one) instead of
every value: these tests hold the two schemas equal on the shipped datasets, a synthetic
table and frames hypothesis makes.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.data
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slipway.data.intake import read_table
from slipway.data.shipped import SHIPPED
from slipway.data.synth import synth_chunks
from slipway.data.table import write_csv
from slipway.training.tracking import schema_rows


def whole(frame: pd.DataFrame):
    return mlflow.data.from_pandas(frame).schema


def from_rows(frame: pd.DataFrame):
    return mlflow.data.from_pandas(schema_rows(frame)).schema


@pytest.mark.parametrize("table", SHIPPED, ids=lambda t: f"{t.dataset}/{t.version}")
def test_the_shipped_tables_get_the_schema_of_all_their_rows(table, tmp_path: Path) -> None:
    # built as `make run` seeds them (the CSVs are DVC-tracked, not in a clone), read as the
    # pipeline reads them; the packages that ship penguins and diamonds are test dependencies
    assert table.installed, f"{table.package} is a development dependency: run `uv sync`"
    frame, _ = read_table(write_csv(table.build(), tmp_path / table.path))
    assert len(schema_rows(frame)) <= 1 + 2 * frame.shape[1]
    assert from_rows(frame) == whole(frame)


def test_a_synthetic_table_with_missing_values_gets_the_schema_of_all_its_rows() -> None:
    frame = pd.DataFrame(next(synth_chunks(5_000, features=12, seed=3)))
    frame.iloc[4_321, 0] = np.nan  # one missing number, far from the first row
    text = next(c for c in frame.columns if frame[c].dtype == object)
    frame.loc[2_500, text] = None
    schema = from_rows(frame)
    assert schema == whole(frame)
    required = {spec.name: spec.required for spec in schema.inputs}
    assert required[frame.columns[0]] is False
    assert required[text] is False
    assert sum(required.values()) == frame.shape[1] - 2


def _column(kind: str, n: int, draw) -> pd.Series:
    holes = draw(st.lists(st.integers(0, n - 1), max_size=3))
    if kind == "float":
        values = pd.Series(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)))
        values[holes] = np.nan
    elif kind == "int":
        values = pd.Series(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)))
    elif kind == "bool":
        values = pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    else:  # text, as a categorical feature holds it
        values = pd.Series(
            draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=object
        )
        values[holes] = draw(st.sampled_from([None, np.nan]))
    return values


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 40))
    kinds = draw(
        st.lists(st.sampled_from(["float", "int", "bool", "text"]), min_size=1, max_size=5)
    )
    return pd.DataFrame({f"c{i}": _column(kind, n, draw) for i, kind in enumerate(kinds)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_any_checked_frame_gets_the_schema_of_all_its_rows(frame: pd.DataFrame) -> None:
    assert from_rows(frame) == whole(frame)


def test_the_logged_input_carries_the_whole_tables_schema_and_size(monkeypatch) -> None:
    import mlflow.data.pandas_dataset as pandas_dataset

    from slipway.data import DatasetRef
    from slipway.training.tracking import mlflow_dataset

    frame = pd.DataFrame(next(synth_chunks(3_000, features=8, seed=1)))
    frame.iloc[2_999, 1] = np.nan
    expected = whole(frame)
    seen: list[int] = []
    infer = pandas_dataset._infer_schema
    monkeypatch.setattr(
        pandas_dataset, "_infer_schema", lambda df: seen.append(len(df)) or infer(df)
    )
    ref = DatasetRef("synth", "v1", "data/synth/v1.parquet", "0123456789abcdef", "HEAD")
    entity = mlflow_dataset(
        frame, ref, "synth", "s3://bucket/repo", frame.columns[-1]
    )._to_mlflow_entity()
    assert max(seen) <= 1 + 2 * frame.shape[1]  # MLflow looked at a few rows, not 3,000
    logged = mlflow.data.from_pandas(frame.head(1))  # the JSON form of a schema, as logged
    logged.schema = expected
    assert entity.schema == logged._to_mlflow_entity().schema
    assert '"num_rows": 3000' in entity.profile
    assert entity.digest == "0123456789"
