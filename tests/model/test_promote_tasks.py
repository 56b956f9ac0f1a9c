"""A multiclass and a regression candidate promoted end to end, then verified and loaded.

The penguin-like and diamond-like tables of :mod:`tests.model.test_tasks` go through
``train_candidate``, ``evaluate_candidate`` and ``promote_candidate`` (a real MLflow registry in a
SQLite store, the local model store and EFS folder under ``tmp_path``), as the pipeline's search,
evaluate and promote steps call them; the package is then read back with ``slipway.packaging``.
"""

from __future__ import annotations

import numpy as np
import pytest

from slipway.data import feature_frame, load_frame, spec_from_metadata, split_dataset
from slipway.errors import ModelPackageError
from slipway.packaging import (
    ONNX_FILE,
    load_package,
    onnx_feed,
    open_model_store,
    open_session,
    run_onnx,
)
from slipway.params import parse_params
from slipway.registry import promote_candidate
from tests.model.test_tasks import (
    DIAMOND_SPEC,
    PENGUIN_SPEC,
    diamond_like,
    penguin_like,
    train_and_evaluate,
    write,
)

LINEAR = [{"estimator": "linear", "grid": {"scaler": ["standard"]}}]


@pytest.fixture
def settings(tmp_path):
    from slipway.config import load_settings

    return load_settings(state_dir=tmp_path / "state", git_commit="0" * 40)


def promote(frame, spec, raw, settings, tmp_path):
    from slipway.registry import CandidateRun

    trained, evaluation, _ = train_and_evaluate(frame, spec, raw, settings, tmp_path)
    assert evaluation.decision.promote, evaluation.decision.reason
    path, ref = write(frame, tmp_path, spec.name)  # the same file and ref train_and_evaluate used
    candidate = CandidateRun(trained.run_id, trained.model_uri, tmp_path / "model.skops", path, ref)
    params = parse_params(raw)
    promotion = promote_candidate(
        candidate, None, evaluation.decision.candidate, spec, params.search, settings
    )
    store = open_model_store(settings)
    model, manifest = load_package(store, settings.model_name, promotion.version_code)
    _, holdout = split_dataset(load_frame(path, spec), 0.2, 42, spec.target)
    return promotion, store, model, manifest, feature_frame(holdout, spec), trained.model


def test_a_multiclass_model_is_promoted_with_its_spec_and_a_string_input_onnx_copy(
    settings, tmp_path
):
    raw = {
        "search": {"cv_folds": 3, "scoring": "f1_macro", "candidates": LINEAR},
        "evaluate": {"thresholds": {"f1_macro": 0.8}},
    }
    promotion, store, model, manifest, holdout, trained = promote(
        penguin_like(), PENGUIN_SPEC, raw, settings, tmp_path
    )
    assert promotion.created is True
    assert promotion.efs_path is not None
    assert spec_from_metadata(manifest, "manifest") == PENGUIN_SPEC
    assert manifest["task"] == "multiclass"
    assert [(f["name"], f["kind"]) for f in manifest["features"]] == [
        ("bill_length", "numeric"),
        ("flipper", "numeric"),
        ("island", "categorical"),
        ("male", "boolean"),
    ]
    assert manifest["classes"] == ["adelie", "chinstrap", "gentoo"]
    assert "positive_class" not in manifest
    assert "training_positive_rate" not in manifest
    assert manifest["outputs"][1]["shape"] == [-1, 3]
    assert manifest["training_target"]["classes"] == manifest["classes"]
    assert sum(manifest["training_target"]["fractions"]) == pytest.approx(1.0)
    assert 0.03 < manifest["training_stats"]["bill_length"]["missing"] < 0.15
    assert manifest["training_stats"]["island"]["missing"] > 0
    assert manifest["metrics"]["f1_macro"] >= 0.8

    record = manifest["onnx"]
    assert record["used"] is True, record
    assert record["check_rows"] == len(holdout)  # the holdout, not the training rows
    assert record["layout"] == "columns FP32"  # nullable numerics: ONNX Runtime imputes float32
    assert {i["name"]: i["datatype"] for i in record["inputs"]} == {
        "bill_length": "FP32",
        "flipper": "FP32",
        "island": "BYTES",
        "male": "FP32",
    }
    # what the server will do: open the verified copy with the manifest's inputs and feed it
    blob = store.read(settings.model_name, promotion.version_code, ONNX_FILE)
    out = run_onnx(open_session(blob, record["inputs"]), onnx_feed(holdout, record["inputs"]))
    assert list(out["label"]) == list(model.predict(holdout))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(holdout), atol=1e-5)
    np.testing.assert_array_equal(model.predict_proba(holdout), trained.predict_proba(holdout))
    with pytest.raises(ModelPackageError, match="expected inputs"):
        open_session(blob)  # a reader of the original one-tensor layout refuses it (skops)


def test_a_regression_model_is_promoted_with_target_statistics_and_a_value_output(
    settings, tmp_path
):
    raw = {
        "search": {"cv_folds": 3, "candidates": LINEAR},
        "evaluate": {"primary_metric": "rmse", "thresholds": {"rmse": 400.0, "r2": 0.9}},
    }
    frame = diamond_like()
    promotion, store, model, manifest, holdout, _ = promote(
        frame, DIAMOND_SPEC, raw, settings, tmp_path
    )
    assert manifest["task"] == "regression"
    assert "classes" not in manifest
    assert manifest["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    target = manifest["training_target"]
    assert target["min"] <= target["quantiles"]["0.5"] <= target["max"]
    assert target["mean"] == pytest.approx(frame["price"].mean(), rel=0.05)
    cut = manifest["training_stats"]["cut"]
    assert cut["categories"] == ["fair", "good", "ideal"]
    assert sum(cut["fractions"]) == pytest.approx(1.0)

    record = manifest["onnx"]
    assert record["used"] is True, record
    assert record["layout"] == "columns FP64"  # no imputer, no tree: double end to end
    assert record["max_scaled_value_difference"] <= 1e-9
    blob = store.read(settings.model_name, promotion.version_code, ONNX_FILE)
    out = run_onnx(open_session(blob, record["inputs"]), onnx_feed(holdout, record["inputs"]))
    np.testing.assert_allclose(out["value"].ravel(), model.predict(holdout), rtol=1e-9)
