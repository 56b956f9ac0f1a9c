"""The breast-cancer dataset itself: seeding is deterministic, the seeded data passes its
committed spec (what validate-data checks), and every kind of violation is caught and reported
together."""

import numpy as np
import pandas as pd
import pytest
import yaml

from slipway.data.checks import validate_with_spec
from slipway.data.report import ensure_valid
from slipway.data.schema import FEATURES
from slipway.data.spec import load_dataset_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset, split_dataset, write_csv
from slipway.data.versioning import md5_file
from slipway.errors import DatasetValidationError
from tests.support import REPO

PROJECT = REPO
#: the committed spec, which pull-data hands to validate-data
SPEC = load_dataset_spec(PROJECT / "data" / "breast-cancer" / "dataset.yaml")


def validate_dataset(frame):
    return validate_with_spec(frame, SPEC)


@pytest.mark.parametrize("version", list(DATASET_VERSIONS))
def test_seeded_file_matches_the_committed_dvc_pointer(tmp_path, version):
    spec = DATASET_VERSIONS[version]
    seeded = write_csv(build_dataset(spec), tmp_path / spec.path)
    pointer = yaml.safe_load((PROJECT / f"{spec.path}.dvc").read_text())
    assert md5_file(seeded) == pointer["outs"][0]["md5"]
    assert seeded.stat().st_size == pointer["outs"][0]["size"]


@pytest.mark.parametrize("version", list(DATASET_VERSIONS))
def test_seeded_versions_pass_the_schema(version):
    frame = build_dataset(DATASET_VERSIONS[version])
    report = validate_dataset(frame)
    assert report.passed, report.to_markdown(version)
    assert list(frame.columns) == [*FEATURES, "diagnosis"]


def test_versions_differ_and_v1_is_a_subset_of_v2():
    v1, v2 = (build_dataset(DATASET_VERSIONS[v]) for v in ("v1", "v2"))
    assert (len(v1), len(v2)) == (350, 569)
    assert len(v1.merge(v2)) == len(v1)


def test_holdout_is_stable_across_versions_and_balanced():
    v1, v2 = (build_dataset(DATASET_VERSIONS[v]) for v in ("v1", "v2"))
    train1, _ = split_dataset(v1, 0.2, 42)
    train2, holdout2 = split_dataset(v2, 0.2, 42)
    # a champion trained on v1 never saw a row of v2's holdout: the comparison stays fair
    assert len(train1.merge(holdout2)) == 0
    assert 0.15 < len(holdout2) / len(v2) < 0.25
    assert abs(holdout2["diagnosis"].mean() - v2["diagnosis"].mean()) < 0.07
    again, _ = split_dataset(v2, 0.2, 42)
    pd.testing.assert_frame_equal(train2, again)


@pytest.fixture
def good():
    return build_dataset(DATASET_VERSIONS["v2"]).copy()


def _checks(frame):
    return {v["check"] for v in validate_dataset(frame).violations}


def test_missing_column(good):
    assert "column_in_dataframe" in _checks(good.drop(columns=["mean_area"]))


def test_extra_column(good):
    assert "column_in_schema" in _checks(good.assign(patient_name="x"))


def test_nulls(good):
    good.loc[5, "mean_radius"] = np.nan
    assert "not_nullable" in _checks(good)


def test_unknown_label(good):
    good.loc[3, "diagnosis"] = 2
    assert "isin((0, 1))" in _checks(good)


def test_negative_or_absurd_measurement(good):
    good.loc[1, "mean_area"] = -1.0
    good.loc[2, "worst_area"] = 1e9
    checks = _checks(good)
    assert "greater_than_or_equal_to(0.0)" in checks
    assert any(c.startswith("less_than_or_equal_to") for c in checks)


def test_wrong_dtype(good):
    good["mean_texture"] = good["mean_texture"].astype(str)
    assert any("dtype" in c for c in _checks(good))


def test_duplicates(good):
    assert "more than 0 duplicated rows" in _checks(pd.concat([good, good.head(3)]))


def test_too_few_rows(good):
    assert "fewer than 100 rows" in _checks(good.head(50))


def test_one_report_lists_every_violation(good):
    bad = (
        pd.concat([good.head(60), good.head(2)]).drop(columns=["mean_area"]).reset_index(drop=True)
    )
    bad.loc[3, "mean_radius"] = np.nan
    bad.loc[4, "diagnosis"] = 7
    report = validate_dataset(bad)
    checks = {v["check"] for v in report.violations}
    assert {
        "column_in_dataframe",
        "not_nullable",
        "isin((0, 1))",
        "fewer than 100 rows",
        "more than 0 duplicated rows",
    } <= checks
    with pytest.raises(
        DatasetValidationError, match=r"failed validation with \d+ violation"
    ) as info:
        ensure_valid(report, "v9@deadbeef")
    assert "| mean_radius | not_nullable |" in info.value.report
    assert "Result: **failed**" in info.value.report


def test_committed_spec_equals_the_one_in_code():
    from slipway.data.schema import breast_cancer_spec

    committed = load_dataset_spec(PROJECT / "data" / "breast-cancer" / "dataset.yaml")
    assert committed == breast_cancer_spec()
    assert committed.feature_names == list(FEATURES)
    assert committed.columns == [*FEATURES, "diagnosis"]


@pytest.mark.parametrize("version", list(DATASET_VERSIONS))
def test_shipped_versions_carry_no_poison(version):
    report = validate_dataset(build_dataset(DATASET_VERSIONS[version]))
    poison = {"constant_column", "equals_label", "leaks_label", "infinite_values"}
    assert not poison & {v["check"] for v in report.violations}


def test_constant_column_and_label_leak_now_fail(good):
    checks = _checks(good.assign(mean_radius=3.0, worst_area=good["diagnosis"] * 900.0 + 100.0))
    assert {"constant_column", "leaks_label"} <= checks
