"""Packages that follow the dataset spec: manifest per task, statistics per kind, ONNX and fallback."""

import json

import numpy as np
import pandas as pd
import pytest

from slipway.data import DatasetSpec, feature_frame
from slipway.errors import ModelPackageError
from slipway.packaging import MANIFEST, ONNX_FILE, PackageInfo, build_package
from slipway.packaging.onnx_model import input_layouts, onnx_feed, open_session, run_onnx
from slipway.packaging.statistics import target_statistics, training_statistics
from slipway.training import build_preprocessor, make_estimator

INFO = PackageInfo("m", "v1-20261128-0123abcd", "0123abcd" * 4, 1, {}, "abc", {})


def spec(task, **extra):
    features = [
        {"name": "size", "kind": "numeric", "nullable": True},
        {"name": "count", "kind": "integer"},
        {"name": "flag", "kind": "boolean"},
        {"name": "colour", "kind": "categorical", "nullable": True, "categories": ["r", "g", "b"]},
    ]
    return DatasetSpec.model_validate(
        {"name": "toy", "task": task, "target": "y", "features": features, **extra}
    )


def frame(rows=240, seed=0):
    rng = np.random.default_rng(seed)
    colour = rng.choice(["r", "g", "b"], size=rows).astype(object)
    size = rng.normal(10, 3, rows) + np.where(colour == "r", 4.0, 0.0)
    out = pd.DataFrame(
        {
            "size": size,
            "count": rng.integers(0, 5, rows),
            "flag": rng.choice(["yes", "no"], size=rows),
            "colour": colour,
        }
    )
    out["value"] = 3 * size + (colour == "g") * 5 + rng.normal(0, 1, rows)
    out.loc[rng.random(rows) < 0.1, "size"] = np.nan
    out.loc[rng.random(rows) < 0.1, "colour"] = None
    return out


def fitted(task, estimator="logistic_regression", **extra):
    s = spec(task, **extra)
    raw = frame()
    if task == "regression":
        y = raw["value"].to_numpy()
    else:
        y = np.where(raw["value"] > raw["value"].median(), "high", "low")
        if task == "multiclass":
            y = np.where(raw["value"] > raw["value"].quantile(0.8), "top", y)
    x = feature_frame(raw, s)
    from sklearn.pipeline import Pipeline

    model = Pipeline(
        [("features", build_preprocessor(s)), ("clf", make_estimator(estimator, task, 0))]
    )
    return s, model.fit(x, y), x, y


def manifest_of(files):
    return json.loads(files[MANIFEST])


def test_numeric_statistics_leave_gaps_out_of_the_bins_and_count_them():
    x = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, np.nan, 6.0, 7.0, 8.0]})
    stats = training_statistics(x, bins=4)["a"]
    assert stats["missing"] == pytest.approx(2 / 8)
    assert sum(stats["fractions"]) == pytest.approx(1.0)  # over the 6 present values
    assert len(stats["fractions"]) == len(stats["edges"]) + 1
    assert (stats["min"], stats["max"], stats["mean"]) == (1.0, 8.0, pytest.approx(28 / 6))
    empty = training_statistics(pd.DataFrame({"a": [np.nan, np.nan]}))["a"]
    assert (empty["missing"], empty["edges"], empty["fractions"], empty["mean"]) == (
        1.0,
        [],
        [1.0],
        None,
    )


def test_categorical_and_boolean_statistics_give_frequencies_and_missing_shares():
    s = spec("regression")
    x = feature_frame(
        pd.DataFrame(
            {
                "size": [1.0, 2.0, 3.0, 4.0, 5.0],
                "count": [1, 2, 3, 4, 5],
                "flag": ["yes", "no", "yes", "yes", None],
                "colour": ["r", "r", "g", None, "purple"],
            }
        ),
        s,
    )
    stats = training_statistics(x, spec=s)
    colour = stats["colour"]
    assert colour["kind"] == "categorical"
    assert colour["categories"] == ["r", "g", "b"]
    assert colour["fractions"] == pytest.approx([2 / 4, 1 / 4, 0.0])  # of the 4 present values
    assert colour["other"] == pytest.approx(1 / 4)  # "purple" is none of the spec's categories
    assert colour["missing"] == pytest.approx(1 / 5)
    flag = stats["flag"]
    assert (flag["kind"], flag["edges"], flag["missing"]) == ("boolean", [0.5], 0.2)
    assert flag["true_fraction"] == pytest.approx(3 / 4)
    assert flag["fractions"] == pytest.approx([1 / 4, 3 / 4])
    assert stats["count"]["kind"] == "integer"


def test_target_statistics_per_task():
    binary = spec("binary", classes=["low", "high"], positive_class="high")
    out = target_statistics(np.array(["low", "high", "high", "high"]), binary, ["high", "low"])
    assert out == {
        "task": "binary",
        "classes": ["high", "low"],
        "fractions": [0.75, 0.25],
        "positive_class": "high",
        "positive_rate": 0.75,
    }
    reg = target_statistics(np.arange(101.0), spec("regression"))
    assert (reg["mean"], reg["min"], reg["max"]) == (50.0, 0.0, 100.0)
    assert reg["quantiles"] == {"0.05": 5.0, "0.25": 25.0, "0.5": 50.0, "0.75": 75.0, "0.95": 95.0}


def test_binary_manifest_records_the_spec_positive_class_and_rate():
    s, model, x, y = fitted("binary", classes=["low", "high"], positive_class="high")
    manifest = manifest_of(build_package(model, x, INFO, spec=s, train_y=y))
    assert manifest["spec"]["positive_class"] == "high"
    assert manifest["task"] == "binary"
    assert manifest["classes"] == ["high", "low"]  # the model's probability columns, in order
    assert manifest["positive_class"] == "high"
    assert manifest["training_positive_rate"] == pytest.approx(np.mean(y == "high"))
    assert manifest["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [-1]}
    assert manifest["features"][3] == {
        "name": "colour",
        "dtype": "object",
        "kind": "categorical",
        "nullable": True,
        "categories": ["r", "g", "b"],
    }
    assert set(manifest["training_stats"]) == set(s.feature_names)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_a_mixed_kind_pipeline_converts_and_agrees_with_scikit_learn(task):
    extra = {"classes": ["low", "high", "top"]} if task == "multiclass" else {}
    s, model, x, y = fitted(
        task, "logistic_regression" if task != "regression" else "linear", **extra
    )
    check = feature_frame(frame(80, seed=1), s)
    files = build_package(model, x, INFO, spec=s, train_y=y, check_x=check)
    record = manifest_of(files)["onnx"]
    assert record["used"] is True, record
    assert record["check_rows"] == 80
    assert record["layout"] == "columns FP32"  # the nullable numeric needs a float32 Imputer
    assert record["attempts"][0]["layout"] == "columns FP64"
    assert "Imputer" in record["attempts"][0]["reason"]
    assert [i["datatype"] for i in record["inputs"]] == ["FP32", "FP32", "FP32", "BYTES"]
    out = run_onnx(
        open_session(files[ONNX_FILE], record["inputs"]), onnx_feed(check, record["inputs"])
    )
    if task == "regression":
        np.testing.assert_allclose(out["value"].ravel(), model.predict(check), rtol=1e-4)
    else:
        assert list(out["label"]) == list(model.predict(check))
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(check), atol=1e-5)


def test_all_numeric_models_keep_the_single_float64_tensor():
    numeric = input_layouts(["a", "b"], {})
    assert [(i.name, i.datatype, i.features) for i in numeric[0]] == [("input", "FP64", ("a", "b"))]
    mixed = input_layouts(["a", "c"], {"c": "categorical"})
    assert [[i.datatype for i in layout] for layout in mixed] == [
        ["FP64", "BYTES"],
        ["FP32", "BYTES"],
    ]


def test_a_model_that_does_not_convert_is_packaged_without_onnx_and_says_why(monkeypatch):
    s, model, x, y = fitted("multiclass", classes=["low", "high", "top"])

    def refuse(*_args, **_kwargs):
        raise ModelPackageError("skl2onnx cannot convert LogisticRegression: no")

    monkeypatch.setattr("slipway.packaging.onnx_model.convert_to_onnx", refuse)
    files = build_package(model, x, INFO, spec=s, train_y=y)
    assert ONNX_FILE not in files
    manifest = manifest_of(files)
    assert ONNX_FILE not in manifest["files"]
    assert manifest["onnx"]["used"] is False
    assert manifest["onnx"]["reason"].startswith("ModelPackageError: skl2onnx cannot convert")
    assert [a["layout"] for a in manifest["onnx"]["attempts"]] == ["columns FP64", "columns FP32"]


def test_a_model_that_disagrees_is_packaged_without_onnx(monkeypatch):
    monkeypatch.setattr("slipway.packaging.onnx_model.ONNX_TOLERANCE", -1.0)
    s, model, x, y = fitted("regression")
    files = build_package(model, x, INFO, spec=s, train_y=y)
    assert ONNX_FILE not in files
    assert manifest_of(files)["onnx"]["reason"].startswith("values differ beyond tolerance")


def test_rows_that_are_not_the_spec_features_are_refused():
    s, model, x, y = fitted("regression")
    with pytest.raises(ModelPackageError, match=r"pass feature_frame\(rows, spec\)"):
        build_package(model, x[["count", "size", "flag", "colour"]], INFO, spec=s, train_y=y)
    with pytest.raises(ModelPackageError, match="needs the training positive rate"):
        build_package(model, x, INFO)


def test_the_onnx_check_runs_on_a_bounded_seeded_sample_of_the_check_rows(monkeypatch):
    monkeypatch.setattr("slipway.packaging.onnx_model.ONNX_CHECK_ROWS", 50)
    s, model, x, y = fitted("regression", "linear")
    first = manifest_of(build_package(model, x, INFO, spec=s, train_y=y, check_x=x))["onnx"]
    again = manifest_of(build_package(model, x, INFO, spec=s, train_y=y, check_x=x))["onnx"]
    assert first["check_rows"] == 50 < len(x)
    assert first["max_abs_value_difference"] == again["max_abs_value_difference"]
