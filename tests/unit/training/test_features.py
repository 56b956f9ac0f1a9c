"""The features step built from the dataset spec: each kind, gaps, unknown categories, ignored columns."""

import numpy as np
import pandas as pd
import pytest

from slipway.data import DatasetSpec
from slipway.errors import DatasetValidationError
from slipway.training.features import (
    MISSING_CATEGORY,
    build_preprocessor,
    feature_frame,
    scaler_name,
)

SPEC = DatasetSpec.model_validate(
    {
        "name": "toy",
        "task": "multiclass",
        "target": "label",
        "classes": ["a", "b", "c"],
        "features": [
            {"name": "size", "kind": "numeric"},
            {"name": "weight", "kind": "numeric", "nullable": True},
            {"name": "count", "kind": "integer", "nullable": True},
            {"name": "flag", "kind": "boolean"},
            {"name": "colour", "kind": "categorical", "categories": ["red", "green", "blue"]},
            {"name": "grade", "kind": "categorical", "nullable": True, "categories": [1, 2]},
        ],
        "ignore": ["row_id"],
    }
)


def toy_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_id": [101, 102, 103, 104],
            "size": [1.0, 2.0, 3.0, 4.0],
            "weight": [10.0, np.nan, 30.0, 50.0],
            "count": pd.array([1, None, 3, 3], dtype="Int64"),
            "flag": ["yes", "No", "TRUE", "0"],
            "colour": ["red", "green", "red", "blue"],
            "grade": [1.0, np.nan, 2.0, 2.0],  # an int column with a gap, as CSV reads it
            "label": ["a", "b", "a", "c"],
        }
    )


def test_feature_frame_has_only_the_spec_features_in_spec_order_and_kind_dtypes():
    x = feature_frame(toy_frame(), SPEC)
    assert list(x.columns) == ["size", "weight", "count", "flag", "colour", "grade"]
    assert "row_id" not in x  # ignored columns and the target are never features
    assert "label" not in x
    assert x["count"].dtype == np.float64
    assert np.isnan(x["count"][1])
    assert x["flag"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert x["grade"].tolist() == ["1", MISSING_CATEGORY, "2", "2"]  # whole floats without .0
    assert x["colour"].dtype == object


def test_a_missing_feature_or_a_bad_boolean_is_named():
    with pytest.raises(DatasetValidationError, match=r"lacks the feature column\(s\) colour"):
        feature_frame(toy_frame().drop(columns=["colour"]), SPEC)
    bad = toy_frame().assign(flag=["yes", "maybe", "no", "no"])
    with pytest.raises(DatasetValidationError, match="boolean column 'flag' holds 'maybe'"):
        feature_frame(bad, SPEC)


def test_preprocessor_groups_columns_by_kind_and_nullability():
    pre = build_preprocessor(SPEC, "robust")
    groups = {name: (t, cols) for name, t, cols in pre.transformers}
    assert set(groups) == {
        "numeric",
        "numeric_nullable",
        "boolean",
        "categorical",
        "categorical_nullable",
    }
    assert groups["numeric"][1] == [0]  # by position in spec.feature_names
    assert type(groups["numeric"][0]).__name__ == "RobustScaler"
    assert [s for s, _ in groups["numeric_nullable"][0].steps] == ["impute", "scale"]
    assert groups["numeric_nullable"][0].steps[0][1].strategy == "median"
    assert groups["numeric_nullable"][1] == [1, 2]
    assert groups["boolean"] == ("passthrough", [3])
    assert [s for s, _ in groups["categorical"][0].steps] == ["onehot"]
    assert [s for s, _ in groups["categorical_nullable"][0].steps] == ["impute", "onehot"]
    assert scaler_name(pre) == "RobustScaler"
    assert scaler_name(build_preprocessor(SPEC, "none")) == "passthrough"


def test_gaps_are_imputed_and_categories_one_hot_encoded():
    x = feature_frame(toy_frame(), SPEC)
    out = build_preprocessor(SPEC, "none").fit(x).transform(x)
    # size, weight, count, flag, colour x3, grade x2
    assert out.shape == (4, 4 + 3 + 2)
    assert not np.isnan(out).any()
    assert out[1, 1] == 30.0  # median of 10, 30, 50
    assert out[1, 2] == 3.0  # median of 1, 3, 3
    np.testing.assert_array_equal(out[:, 4:7], [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(out[1, 7:], [0, 1])  # the gap takes the most frequent grade


def test_an_unknown_category_at_predict_time_is_ignored_not_an_error():
    x = feature_frame(toy_frame(), SPEC)
    pre = build_preprocessor(SPEC).fit(x)
    unseen = x.head(1).assign(colour="purple")
    row = pre.transform(unseen)
    np.testing.assert_array_equal(row[0, 4:7], [0, 0, 0])


def test_boolean_gaps_take_the_most_frequent_value():
    spec = SPEC.model_copy(
        update={
            "features": [
                *SPEC.features[:3],
                SPEC.features[3].model_copy(update={"nullable": True}),
                *SPEC.features[4:],
            ]
        }
    )
    frame = toy_frame().assign(flag=[True, None, True, False])
    x = feature_frame(frame, spec)
    out = build_preprocessor(spec, "none").fit(x).transform(x)
    groups = [name for name, _, _ in build_preprocessor(spec).transformers]
    assert "boolean_nullable" in groups
    assert out[:, 3].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_the_spec_survives_the_protobuf_doubles_of_artifact_metadata():
    from slipway.data import breast_cancer_spec, spec_from_metadata, spec_to_metadata

    spec = breast_cancer_spec()
    as_kfp = {"version": "v2", "spec": spec_to_metadata(spec)}
    as_kfp["spec"] = {**as_kfp["spec"], "classes": [0.0, 1.0], "positive_class": 1.0}
    as_kfp["spec"]["min_rows"] = 100.0
    assert spec_from_metadata(as_kfp) == spec
    assert spec_from_metadata(as_kfp).classes == [0, 1]


def test_a_mixed_kind_pipeline_converts_to_onnx_with_one_input_per_column():
    # what the packaging side will do: numeric columns as float tensors (ONNX Runtime imputes
    # float32 only), categoricals as strings with "" for missing; probabilities must agree.
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = pd.concat([toy_frame()] * 5, ignore_index=True)
    x = feature_frame(frame, SPEC)
    model = Pipeline([("features", build_preprocessor(SPEC)), ("clf", LogisticRegression())])
    model.fit(x, frame["label"])
    text = {f.name for f in SPEC.features if f.kind == "categorical"}
    types = [
        (c, StringTensorType([None, 1]) if c in text else FloatTensorType([None, 1]))
        for c in x.columns
    ]
    onx = to_onnx(model, initial_types=types, options={id(model[-1]): {"zipmap": False}})
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {c: x[[c]].to_numpy().astype(str if c in text else np.float32) for c in x.columns}
    labels, proba = session.run(None, feeds)
    np.testing.assert_allclose(proba, model.predict_proba(x), atol=1e-4)
    assert list(labels) == list(model.predict(x))
