"""The input contract from the manifest: per-column tensors by kind, outputs per task, metadata.

Penguin-like (multiclass: a nullable number, a nullable categorical, a boolean) and diamond-like
(regression: two categoricals, an integer) packages built as promotion builds them, served in
process; answers must equal the in-process scikit-learn model's.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from slipway.packaging import onnx_feed
from slipway.serving.binary import decode_tensor, encode_tensor
from slipway.serving.contract import contract_from_manifest
from slipway.serving.model import columns_feed
from tests.support.serving import manifest_of, metric_value, package_files
from tests.support.tasks import (
    TASK_VERSION,
    column_inputs,
    fitted,
    holdout_x,
    spec_of,
    task_package,
)

INFER = "/v2/models/slipway/infer"


@pytest.fixture(params=[True, False], ids=["onnx", "skops"])
def penguins(request, make_client):
    client, registry = make_client(
        task_package("penguins", onnx=request.param), version=TASK_VERSION
    )
    return client, registry


@pytest.fixture(params=[True, False], ids=["onnx", "skops"])
def diamonds(request, make_client):
    client, registry = make_client(
        task_package("diamonds", onnx=request.param), version=TASK_VERSION
    )
    return client, registry


def infer(client, inputs, **extra):
    response = client.post(INFER, json={"inputs": inputs, **extra})
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def penguin_rows(n: int = 12):
    return holdout_x("penguins").iloc[:n]


def test_multiclass_answers_text_labels_and_every_class_probability(penguins) -> None:
    client, registry = penguins
    x = penguin_rows(60)
    assert x["bill_length"].isna().any()  # gaps go through (as null)
    assert x["island"].eq("").any()
    out = infer(client, column_inputs(x, spec_of("penguins")))
    model = fitted("penguins")
    assert out["label"]["datatype"] == "BYTES"
    assert out["label"]["data"] == model.predict(x).tolist()
    assert out["probability"]["shape"] == [len(x), 3]
    proba = np.asarray(out["probability"]["data"]).reshape(len(x), 3)
    np.testing.assert_allclose(proba, model.predict_proba(x), atol=1e-5)
    counted = sum(
        metric_value(
            registry,
            "slipway_predictions_total",
            model="slipway",
            version=TASK_VERSION,
            **{"class": c},
        )
        for c in ("adelie", "chinstrap", "gentoo")
    )
    assert counted == len(x)


def test_regression_answers_the_value(diamonds) -> None:
    client, registry = diamonds
    x = holdout_x("diamonds").iloc[:9]
    out = infer(client, column_inputs(x, spec_of("diamonds")))
    assert list(out) == ["value"]
    assert (out["value"]["datatype"], out["value"]["shape"]) == ("FP64", [9])
    want = fitted("diamonds").predict(x)
    np.testing.assert_allclose(out["value"]["data"], want, rtol=1e-4)
    labels = {"model": "slipway", "version": TASK_VERSION}
    assert metric_value(registry, "slipway_prediction_value_count", **labels) == 9
    total = metric_value(registry, "slipway_prediction_value_sum", **labels)
    assert total == pytest.approx(float(np.sum(out["value"]["data"])))


def test_metadata_lists_every_feature_tensor_and_the_outputs_of_the_task(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    meta = client.get("/v2/models/slipway").json()
    assert meta["inputs"] == [
        {"name": "bill_length", "datatype": "FP64", "shape": [-1]},
        {"name": "flipper", "datatype": "FP64", "shape": [-1]},
        {"name": "island", "datatype": "BYTES", "shape": [-1]},
        {"name": "male", "datatype": "BOOL", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probability", "datatype": "FP64", "shape": [-1, 3]},
    ]
    parameters = meta["parameters"]
    assert parameters["task"] == "multiclass"
    assert parameters["classes"] == ["adelie", "chinstrap", "gentoo"]
    assert parameters["nullable"] == ["bill_length", "island"]
    assert parameters["categories"] == {"island": ["biscoe", "dream", "torgersen"]}
    assert parameters["kinds"]["male"] == "boolean"
    regression, _ = make_client(task_package("diamonds"), version=TASK_VERSION)
    outputs = regression.get("/v2/models/slipway").json()["outputs"]
    assert outputs == [{"name": "value", "datatype": "FP64", "shape": [-1]}]


def test_the_plain_model_keeps_its_one_tensor_metadata(make_client) -> None:
    client, _ = make_client()
    meta = client.get("/v2/models/slipway").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probability"]
    assert contract_from_manifest(manifest_of(package_files())).plain


def binary_body(inputs: list[dict], arrays: list[np.ndarray], extra: dict | None = None):
    blobs = [encode_tensor(a, t["datatype"]) for t, a in zip(inputs, arrays, strict=True)]
    header = {
        "inputs": [
            {**t, "parameters": {"binary_data_size": len(b)}}
            for t, b in zip(inputs, blobs, strict=True)
        ],
        **(extra or {}),
    }
    head = orjson.dumps(header)
    return head + b"".join(blobs), len(head)


def test_binary_bytes_inputs_and_binary_outputs(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    x = penguin_rows(6).fillna({"bill_length": 40.0})
    tensors = [
        {"name": "bill_length", "shape": [6], "datatype": "FP64"},
        {"name": "flipper", "shape": [6, 1], "datatype": "FP32"},
        {"name": "island", "shape": [6], "datatype": "BYTES"},
        {"name": "male", "shape": [6], "datatype": "BOOL"},
    ]
    arrays = [
        x["bill_length"].to_numpy(),
        x["flipper"].to_numpy(dtype=np.float32),
        np.array([v.encode() for v in x["island"]], dtype=object),
        x["male"].to_numpy() == 1.0,
    ]
    body, length = binary_body(tensors, arrays, {"parameters": {"binary_data_output": True}})
    response = client.post(
        INFER,
        content=body,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(length),
        },
    )
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:size])
    label, proba = header["outputs"]
    raw = memoryview(response.content)[size:]
    labels = decode_tensor("BYTES", 6, raw[: label["parameters"]["binary_data_size"]], "label")
    probabilities = decode_tensor(
        "FP64", 18, raw[label["parameters"]["binary_data_size"] :], "probability"
    )
    sent = x.assign(flipper=x["flipper"].astype(np.float32).astype(np.float64))
    model = fitted("penguins")
    assert [v.decode() for v in labels] == model.predict(sent).tolist()
    assert proba["shape"] == [6, 3]
    np.testing.assert_allclose(probabilities.reshape(6, 3), model.predict_proba(sent), atol=1e-5)


def test_requested_outputs_are_those_of_the_task(make_client) -> None:
    client, _ = make_client(task_package("diamonds"), version=TASK_VERSION)
    inputs = column_inputs(holdout_x("diamonds").iloc[:2], spec_of("diamonds"))
    out = infer(client, inputs, outputs=[{"name": "value"}])
    assert list(out) == ["value"]
    wrong = client.post(INFER, json={"inputs": inputs, "outputs": [{"name": "label"}]})
    assert wrong.status_code == 400
    assert "among value" in wrong.json()["error"] or "one of value" in wrong.json()["error"]


def test_a_wrong_datatype_is_a_400_naming_the_feature_and_both_datatypes(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    inputs = column_inputs(penguin_rows(2), spec_of("penguins"))
    inputs[2] = {"name": "island", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}
    response = client.post(INFER, json={"inputs": inputs})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "feature 'island' is categorical and takes datatype BYTES; received FP64" in message
    inputs = column_inputs(penguin_rows(2), spec_of("penguins"))
    inputs[0] = {"name": "bill_length", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}
    numeric = client.post(INFER, json={"inputs": inputs}).json()["error"]
    assert "feature 'bill_length' is numeric and takes datatype FP64 or FP32 or INT64" in numeric
    assert numeric.endswith("received BYTES")


def test_null_is_a_missing_value_for_nullable_features_only(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    x = penguin_rows(3).copy()
    x.loc[x.index[0], "bill_length"] = np.nan
    x.loc[x.index[1], "island"] = ""
    inputs = column_inputs(x, spec_of("penguins"))
    assert inputs[0]["data"][0] is None
    assert inputs[2]["data"][1] is None
    out = infer(client, inputs)
    assert out["label"]["data"] == fitted("penguins").predict(x).tolist()
    inputs[1]["data"][0] = None  # flipper is not nullable
    refused = client.post(INFER, json={"inputs": inputs})
    assert refused.status_code == 400
    assert "tensor 'flipper'" in refused.json()["error"]


def test_an_unknown_category_is_answered_and_counted(make_client) -> None:
    client, registry = make_client(task_package("penguins"), version=TASK_VERSION)
    x = penguin_rows(3).copy()
    x["island"] = ["atlantis", "biscoe", "atlantis"]
    out = infer(client, column_inputs(x, spec_of("penguins")))
    assert out["label"]["data"] == fitted("penguins").predict(x).tolist()
    labels = {"model": "slipway", "version": TASK_VERSION}
    assert metric_value(registry, "slipway_unknown_category_total", feature="island", **labels) == 2


def test_booleans_take_bool_or_zero_and_one_and_categoricals_refuse_input_0(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    x = penguin_rows(2)
    inputs = column_inputs(x, spec_of("penguins"))
    as_bool = infer(client, inputs)
    inputs[3] = {
        "name": "male",
        "shape": [2],
        "datatype": "INT64",
        "data": [int(v) for v in x["male"]],
    }
    assert infer(client, inputs)["label"] == as_bool["label"]
    inputs[3]["data"] = [2, 0]
    two = client.post(INFER, json={"inputs": inputs})
    assert two.status_code == 400
    assert "boolean feature 'male' takes BOOL values or the numbers 0 and 1" in two.json()["error"]
    matrix = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 1.0]}
    refused = client.post(INFER, json={"inputs": [matrix]})
    assert refused.status_code == 400
    assert "categorical features: send one tensor per feature" in refused.json()["error"]


def test_the_openapi_examples_answer_for_a_model_with_categoricals(make_client) -> None:
    client, _ = make_client(task_package("penguins"), version=TASK_VERSION)
    doc = client.get("/openapi.json").json()
    names = doc["components"]["schemas"]["BytesInput"]["properties"]["name"]["enum"]
    assert names == ["bill_length", "flipper", "island", "male"]  # no input-0: categoricals
    examples = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]
    one = examples["one row"]["value"]["inputs"]
    assert [t["datatype"] for t in one] == ["FP64", "FP64", "BYTES", "BOOL"]
    for example in examples.values():
        assert client.post(INFER, json=example["value"]).status_code == 200


def test_the_server_feed_is_the_packaging_feed() -> None:
    manifest = manifest_of(task_package("penguins"))
    inputs = manifest["onnx"]["inputs"]
    x = penguin_rows(7)
    columns = {name: x[name].to_numpy() for name in x.columns}
    ours = columns_feed(columns, inputs)
    theirs = onnx_feed(x, inputs)
    assert set(ours) == set(theirs)
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype
        np.testing.assert_array_equal(ours[name], array)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "ranking"}, "task 'ranking'"),
        ({"classes": []}, "must list its classes"),
        ({"positive_class": "x"}, "positive_class 'x'"),
    ],
)
def test_a_manifest_without_a_usable_contract_is_refused(change, message) -> None:
    manifest = {**manifest_of(package_files()), **change}
    with pytest.raises(ValueError, match=message):
        contract_from_manifest(manifest)


def test_psi_covers_categoricals_through_the_server(make_client) -> None:
    from slipway.serving import ServingLimits

    client, registry = make_client(
        task_package("penguins"), version=TASK_VERSION, limits=ServingLimits(psi_every=1)
    )
    x = holdout_x("penguins").copy()
    x["island"] = "biscoe"  # every penguin on one island: the categorical drifts
    for _ in range(2):  # 2 x 72 rows: past the window's 100-row minimum
        infer(client, column_inputs(x, spec_of("penguins")))
    client.get("/metrics")
    labels = {"model": "slipway", "version": TASK_VERSION}
    island = metric_value(registry, "slipway_feature_psi", feature="island", **labels)
    flipper = metric_value(registry, "slipway_feature_psi", feature="flipper", **labels)
    assert island > 1.0
    assert flipper < 0.5


@pytest.mark.parametrize("onnx", [True, False], ids=["onnx", "skops"])
def test_binary_with_text_classes_answers_the_positive_class_probability(make_client, onnx) -> None:
    client, registry = make_client(task_package("churn", onnx=onnx), version=TASK_VERSION)
    x = holdout_x("churn").iloc[:15]
    out = infer(client, column_inputs(x, spec_of("churn")))
    model = fitted("churn")
    assert out["label"]["datatype"] == "BYTES"
    assert out["label"]["data"] == model.predict(x).tolist()
    assert out["probability"]["shape"] == [15]
    yes = list(model.classes_).index("yes")
    np.testing.assert_allclose(
        out["probability"]["data"], model.predict_proba(x)[:, yes], atol=1e-6
    )
    binary = client.post(
        INFER,
        json={
            "inputs": column_inputs(x, spec_of("churn")),
            "parameters": {"binary_data_output": True},
        },
    )
    assert binary.status_code == 200
    client.get("/metrics")
    labels = {"model": "slipway", "version": TASK_VERSION}
    positives = metric_value(registry, "slipway_predictions_total", **labels, **{"class": "1"})
    assert positives == 2 * (model.predict(x) == "yes").sum()
