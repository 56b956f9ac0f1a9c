"""Drafting a spec from data: kinds, ranges, categories, nulls, the task; files with BOM/CRLF."""

import numpy as np
import pandas as pd
import pytest

from slipway.data.infer import infer_spec, write_draft_spec
from slipway.data.spec import load_dataset_spec
from slipway.errors import DatasetSpecError


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "height": rng.normal(170, 10, n).round(2),
            "colour": rng.choice(["red", "green", "blue"], n),
            "smoker": rng.choice(["yes", "no"], n),
            "member": rng.choice([True, False], n),
            "label": rng.choice([0, 1], n),
        }
    )


def _kinds(spec):
    return {f.name: f.kind for f in spec.features}


def test_kinds_ranges_categories_and_ignored_ids(frame):
    spec = infer_spec(frame, "toy", "label")
    assert _kinds(spec) == {
        "age": "integer",
        "height": "numeric",
        "colour": "categorical",
        "smoker": "boolean",
        "member": "boolean",
    }
    assert spec.ignore == ["id"]  # 120 distinct strings: an id, not a category
    age = spec.features[0]
    assert (age.min, age.max) == (int(frame.age.min()), int(frame.age.max()))
    assert isinstance(age.min, int)
    assert spec.features[1].min == pytest.approx(frame.height.min())
    assert spec.features[2].categories == ["blue", "green", "red"]
    assert not any(f.nullable for f in spec.features)
    assert (spec.task, spec.classes, spec.positive_class) == ("binary", [0, 1], 1)
    assert spec.min_rows == 100
    assert spec.max_duplicate_rows == 0


def test_nulls_make_a_feature_nullable_and_whole_floats_stay_integer(frame):
    frame["age"] = frame["age"].astype("float64")
    frame.loc[[3, 7], ["age", "colour"]] = np.nan
    spec = infer_spec(frame, "toy", "label")
    age, colour = spec.features[0], spec.features[2]
    assert (age.kind, age.nullable) == ("integer", True)
    assert colour.nullable
    assert colour.categories == ["blue", "green", "red"]
    assert not spec.features[1].nullable


@pytest.mark.parametrize(
    ("labels", "task", "classes", "positive"),
    [
        (["no", "yes", "no", "no"] * 30, "binary", ["no", "yes"], "yes"),  # rarer class
        ([True, False] * 60, "binary", [False, True], True),
        (["a", "b", "c"] * 40, "multiclass", ["a", "b", "c"], None),
        ([0, 1, 2, 3] * 30, "multiclass", [0, 1, 2, 3], None),
        (list(np.linspace(0, 10, 120)), "regression", None, None),
        (list(range(120)), "regression", None, None),  # many whole values: a quantity
    ],
)
def test_task_is_inferred_from_the_target(frame, labels, task, classes, positive):
    spec = infer_spec(frame.assign(label=labels), "toy", "label")
    assert (spec.task, spec.classes, spec.positive_class) == (task, classes, positive)


def test_task_given_wins_and_contradictions_are_named(frame):
    spec = infer_spec(frame.assign(label=[0, 1, 2] * 40), "toy", "label", task="regression")
    assert spec.task == "regression"
    with pytest.raises(DatasetSpecError, match=r"target 'label' has 3 distinct values .* not 2"):
        infer_spec(frame.assign(label=[0, 1, 2] * 40), "toy", "label", task="binary")
    with pytest.raises(DatasetSpecError, match=r"holds text .* cannot be a regression target"):
        infer_spec(frame.assign(label=["a", "b"] * 60), "toy", "label", task="regression")
    with pytest.raises(DatasetSpecError, match=r"target column 'price' is not in the data"):
        infer_spec(frame, "toy", "price")


def test_bom_crlf_and_quoted_fields_read_like_a_plain_file(tmp_path):
    text = 'name,"size, cm",kind,label\r\n' + '"Smith, J",1.5,"a",0\r\nLee,2.5,b,1\r\n' * 10
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    frame = pd.read_csv(path, encoding="utf-8-sig")
    assert list(frame.columns) == ["name", "size, cm", "kind", "label"]
    spec = infer_spec(frame, "bom", "label")
    assert _kinds(spec) == {"name": "categorical", "size, cm": "numeric", "kind": "categorical"}
    assert spec.features[0].categories == ["Lee", "Smith, J"]
    assert spec.max_duplicate_rows == 18  # ten copies of two rows


def test_draft_is_written_once_and_never_overwritten_silently(tmp_path, frame):
    spec = infer_spec(frame, "toy", "label")
    path = write_draft_spec(spec, tmp_path)
    assert path == tmp_path / "data" / "toy" / "dataset.yaml"
    assert path.read_text().startswith("# draft: review and commit")
    assert load_dataset_spec(path) == spec
    path.write_text(path.read_text() + "# reviewed\n")
    with pytest.raises(DatasetSpecError, match=r"dataset\.yaml already exists .* --force"):
        write_draft_spec(spec, tmp_path)
    assert path.read_text().endswith("# reviewed\n")
    write_draft_spec(spec, tmp_path, force=True)
    assert not path.read_text().endswith("# reviewed\n")
    assert [p.name for p in path.parent.iterdir()] == ["dataset.yaml"]  # no temp file left
