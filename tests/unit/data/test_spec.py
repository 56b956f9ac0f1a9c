"""Parsing a dataset spec: strict fields, errors that name the file, the field and the value."""

import pytest

from slipway.data.spec import DatasetSpec, dump_dataset_spec, load_dataset_spec, parse_dataset_spec
from slipway.errors import DatasetSpecError, SlipwayError


def _spec(**overrides):
    base = {
        "name": "toy",
        "task": "binary",
        "target": "y",
        "classes": [0, 1],
        "positive_class": 1,
        "features": [
            {"name": "x", "kind": "numeric", "min": 0, "max": 10.5},
            {"name": "c", "kind": "categorical", "categories": ["a", "b"], "nullable": True},
            {"name": "n", "kind": "integer"},
            {"name": "b", "kind": "boolean"},
        ],
        "ignore": ["id"],
        "min_rows": 5,
        "max_duplicate_rows": 1,
    }
    base.update(overrides)
    return base


def _feature(**overrides):
    return _spec(features=[{"name": "x", "kind": "numeric", **overrides}])


def test_a_good_spec_round_trips_through_yaml(tmp_path):
    spec = parse_dataset_spec(_spec())
    path = tmp_path / "dataset.yaml"
    path.write_text(dump_dataset_spec(spec, header="draft: review and commit"))
    assert path.read_text().startswith("# draft: review and commit\n")
    again = load_dataset_spec(path)
    assert again == spec
    assert again.columns == ["x", "c", "n", "b", "y", "id"]
    assert again.features[0].min == 0
    assert isinstance(again.features[0].min, int)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (_spec(task="binar"), r"field task has 'binar'"),
        (_spec(name="Bad Name"), r"field name has 'Bad Name'"),
        (_spec(target=""), r"field target has ''"),
        (_spec(min_rows=0), r"field min_rows has 0"),
        (_spec(min_rows="5"), r"field min_rows has '5' \(Input should be a valid integer\)"),
        (_spec(max_duplicate_rows=-1), r"field max_duplicate_rows has -1"),
        (_spec(features=[]), r"field features has \[\]"),
        (_spec(ignore="id"), r"field ignore has 'id'"),
        (_spec(colour="red"), r"field colour is not a spec field \(value 'red'\)"),
        ({k: v for k, v in _spec().items() if k != "target"}, r"field target is missing"),
        (_spec(classes=None), r"a binary dataset needs its list of classes"),
        (_spec(classes=[0, 1, 2]), r"exactly 2 classes, got \[0, 1, 2\]"),
        (_spec(positive_class=7), r"positive_class 7 must be one of the classes \[0, 1\]"),
        (_spec(task="multiclass", classes=[0, 1, 2]), r"positive_class applies to binary"),
        (_spec(task="regression", positive_class=None), r"regression dataset has no classes"),
        (_spec(target="x"), r"target 'x' is also listed as a feature"),
        (_spec(ignore=["x"]), r"column\(s\) x are both features and ignored"),
        (_feature(kind="text"), r"field features\.0\.kind has 'text'"),
        (_feature(nullable="no"), r"field features\.0\.nullable has 'no'"),
        (_feature(min="0"), r"field features\.0\.min"),
        (_feature(min=5, max=1), r"features\.0: min 5 is greater than max 1"),
        (_feature(unit="cm"), r"field features\.0\.unit is not a spec field"),
        (_feature(name=""), r"field features\.0\.name has ''"),
        (_feature(categories=["a"]), r"categories apply to categorical features, not 'numeric'"),
        (_feature(kind="boolean", min=0), r"min/max apply to numeric and integer features"),
        (_feature(kind="categorical"), r"features\.0: a categorical feature needs its list"),
        (_feature(kind="categorical", categories=["a", "a"]), r"categories repeat a value"),
        (
            _spec(features=[{"name": "x", "kind": "numeric"}, {"name": "x", "kind": "integer"}]),
            r"features repeat the column\(s\) x",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_value(tmp_path, data, needle):
    import yaml

    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DatasetSpecError, match=needle) as info:
        load_dataset_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a valid dataset spec: ")
    assert "docs/datasets.md" in message
    assert isinstance(info.value, SlipwayError)
    assert isinstance(info.value, ValueError)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(DatasetSpecError, match=r"no dataset spec at .*slipway data infer-spec"):
        load_dataset_spec(tmp_path / "dataset.yaml")


def test_not_yaml_or_not_a_mapping(tmp_path):
    path = tmp_path / "dataset.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(DatasetSpecError, match=r"is not valid YAML"):
        load_dataset_spec(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(DatasetSpecError, match=r"must be a YAML mapping .* got list"):
        load_dataset_spec(path)


def test_strict_types_refuse_a_number_written_as_text():
    with pytest.raises(DatasetSpecError, match=r"field features\.0\.max has '10'"):
        parse_dataset_spec(_feature(max="10"), "x.yaml")
    spec = parse_dataset_spec(
        _spec(task="multiclass", classes=["a", "b", "c"], positive_class=None)
    )
    assert isinstance(spec, DatasetSpec)
    assert spec.classes == ["a", "b", "c"]
