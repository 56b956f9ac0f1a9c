"""The Open Inference Protocol routes, predictions, backpressure and metrics of the server."""

from __future__ import annotations

import numpy as np
import pytest

from slipway.serving import ServingLimits
from slipway.serving.metrics import LOAD_FAILURE_REASONS
from tests.support.serving import (
    INFER,
    VERSION,
    features,
    infer_body,
    metric_value,
    trained,
)


def test_health_and_metadata_routes(served) -> None:
    client, _ = served
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/slipway/ready").json() == {"name": "slipway", "ready": True}
    meta = client.get("/v2/models/slipway").json()
    assert meta["name"] == "slipway"
    assert meta["versions"] == [VERSION]
    assert meta["platform"] == "onnxruntime"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probability"]
    assert meta["parameters"]["features"] == list(features().columns)
    assert client.get("/v2").json()["name"] == "slipway-server"


def test_openapi_documents_the_infer_schema(served) -> None:
    client, _ = served
    doc = client.get("/openapi.json").json()
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    ref = infer["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/InferenceRequest"
    schemas = doc["components"]["schemas"]
    assert {"InferenceRequest", "FloatInput", "InferenceResponse", "ErrorBody"} <= set(schemas)
    assert {"200", "400", "404", "408", "413", "415", "429", "503"} <= set(infer["responses"])
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    tensor = schemas["FloatInput"]["properties"]
    assert tensor["name"]["minLength"] == 1
    assert (tensor["shape"]["minItems"], tensor["shape"]["maxItems"]) == (1, 2)
    assert tensor["shape"]["items"]["minimum"] == 1
    assert all(arm["minItems"] == 1 for arm in tensor["data"]["anyOf"])
    items = schemas["Int64Input"]["properties"]["data"]["anyOf"][0]["items"]["anyOf"]
    assert [arm["type"] for arm in items] == ["integer", "null"]  # null: nullable features only
    inputs = schemas["InferenceRequest"]["properties"]["inputs"]
    assert inputs["minItems"] == 1
    assert set(inputs["items"]["discriminator"]["mapping"]) == {
        "FP64",
        "FP32",
        "INT64",
        "INT32",
        "BOOL",
        "BYTES",
    }
    assert schemas["RequestOutput"]["properties"]["name"]["enum"] == [
        "label",
        "probability",
        "value",
    ]
    versioned = doc["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert versioned["requestBody"] == infer["requestBody"]
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    params = {p["name"]: p["schema"] for p in versioned["parameters"] if p["in"] == "path"}
    assert params == {
        "name": {"type": "string", "enum": ["slipway"]},
        "version": {"type": "string", "enum": [VERSION]},
    }
    assert tensor["name"]["enum"] == ["input-0", *features().columns]
    examples = infer["requestBody"]["content"]["application/json"]["examples"]
    for example in examples.values():
        assert client.post("/v2/models/slipway/infer", json=example["value"]).status_code == 200
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("rows", [1, 7, 1024])
def test_infer_matches_scikit_learn(rows: int, served) -> None:
    client, _ = served
    x = features().sample(rows, replace=True, random_state=rows)
    data = x.to_numpy().ravel().tolist()
    response = client.post(
        INFER,
        json={
            "id": "req-42",
            "inputs": [{"name": "input-0", "shape": [rows, 30], "datatype": "FP64", "data": data}],
        },
    )
    assert response.status_code == 200
    out = response.json()
    assert out["model_name"] == "slipway"
    assert out["model_version"] == VERSION
    assert out["id"] == "req-42"
    label, proba = out["outputs"]
    assert label["name"] == "label"
    assert label["datatype"] == "INT64"
    assert label["shape"] == [rows]
    assert proba["name"] == "probability"
    assert proba["datatype"] == "FP64"
    model = trained()
    np.testing.assert_allclose(proba["data"], model.predict_proba(x)[:, 1], atol=1e-9)
    assert label["data"] == model.predict(x).tolist()


def test_nested_rows_and_column_layout_give_the_same_answer(served) -> None:
    client, _ = served
    x = features().iloc[10:13]
    flat = client.post(INFER, json=infer_body(rows=3, start=10)).json()["outputs"]
    nested = client.post(
        INFER,
        json={
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [3, 30],
                    "datatype": "FP32",
                    "data": x.to_numpy().tolist(),
                }
            ]
        },
    ).json()["outputs"]
    cols = client.post(
        INFER,
        json={
            "inputs": [
                {"name": f, "shape": [3], "datatype": "FP64", "data": x[f].tolist()}
                for f in reversed(x.columns)  # order does not matter: names do
            ]
        },
    ).json()["outputs"]
    assert flat == nested == cols
    assert flat[1]["data"] != flat[1]["data"][:1] * 3  # three different rows


def test_the_usual_request_takes_the_short_way_and_gets_the_general_answer(
    served, monkeypatch
) -> None:
    import slipway.serving.infer as infer_module

    client, _ = served
    app = client.app
    model = app.state.server.model.model
    assert model.rows_session is not None  # the default package: ONNX, plain, one input
    bodies = [infer_body(rows=1, start=i) for i in range(8)]

    def answers() -> list[bytes]:
        out = []
        for body in bodies:
            response = client.post(INFER, json=body)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            request_id = response.json()["id"].encode()
            out.append(response.content.replace(request_id, b"<id>"))
        return out

    metrics = app.state.metrics
    client.portal.call(metrics.stop_flushing)  # what the short way holds stays till a flush
    with monkeypatch.context() as patched:  # the short way decodes nothing by the parser
        patched.setattr(infer_module, "decode_infer_request", None)
        short = answers()
    rows, labels, scores = metrics.served
    assert len(rows) == len(labels) == len(scores) == len(bodies)  # held for the drift window
    assert [row.shape for row in rows] == [(1, 30)] * len(bodies)
    assert {type(label) for label in labels} == {int}
    assert {type(score) for score in scores} == {float}
    model.rows_session = None  # every request by the general way
    try:
        general = answers()
    finally:
        model.rows_session = model.predictor
    assert short == general


def test_response_id_is_generated_when_absent(served) -> None:
    client, _ = served
    ids = {client.post(INFER, json=infer_body()).json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_concurrency_limit_refuses_infer_but_not_probes_or_metrics(make_client) -> None:
    client, registry = make_client(limits=ServingLimits(max_concurrency=0))
    response = client.post(INFER, json=infer_body())
    assert response.status_code == 429
    assert response.json() == {"error": "too many concurrent requests; retry shortly"}
    assert response.headers["retry-after"] == "1"
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert metric_value(registry, "slipway_rejected_requests_total", reason="concurrency") == 1
    assert (
        metric_value(
            registry,
            "slipway_http_requests_total",
            route="/v2/models/{name}/infer",
            method="POST",
            status_class="4xx",
        )
        == 1
    )


def test_metrics_names_labels_and_counts(served) -> None:
    client, registry = served
    client.post(INFER, json=infer_body(rows=3))  # rows 0-2: all malignant
    client.post(INFER, json=infer_body(rows=1, start=19))  # row 19: benign
    client.post(INFER, json={"inputs": []})
    client.get("/v2/health/ready")
    text = client.get("/metrics").text
    for name in (
        "slipway_http_requests_total",
        "slipway_http_request_duration_seconds_bucket",
        "slipway_inflight_requests",
        "slipway_rejected_requests_total",
        "slipway_predictions_total",
        "slipway_prediction_score_bucket",
        "slipway_model_load_failures_total",
        "slipway_model_ready",
        "slipway_model_info",
        "slipway_feature_psi",
        "slipway_training_positive_rate",
    ):
        assert f"\n{name}" in text, name
    model = {"model": "slipway", "version": VERSION}
    assert metric_value(registry, "slipway_predictions_total", **model, **{"class": "1"}) == 3
    assert metric_value(registry, "slipway_predictions_total", **model, **{"class": "0"}) == 1
    assert metric_value(registry, "slipway_prediction_score_count", **model) == 4
    assert metric_value(registry, "slipway_prediction_score_bucket", **model, le="0.1") == 1
    assert 'le="0.3"' in text
    assert "0.30000000000000004" not in text
    infer_2xx = dict(route="/v2/models/{name}/infer", method="POST", status_class="2xx")
    assert metric_value(registry, "slipway_http_requests_total", **infer_2xx) == 2
    assert (
        metric_value(
            registry,
            "slipway_http_requests_total",
            route="/v2/models/{name}/infer",
            method="POST",
            status_class="4xx",
        )
        == 1
    )
    assert (
        metric_value(
            registry,
            "slipway_http_requests_total",
            route="/v2/health/ready",
            method="GET",
            status_class="2xx",
        )
        == 1
    )
    assert metric_value(registry, "slipway_model_ready", model="slipway") == 1
    assert metric_value(registry, "slipway_model_info", **model) == 1
    assert 0.3 < metric_value(registry, "slipway_training_positive_rate", **model) < 0.45
    assert metric_value(registry, "slipway_inflight_requests") == 0
    for reason in LOAD_FAILURE_REASONS:  # pre-created at 0
        assert f'slipway_model_load_failures_total{{model="slipway",reason="{reason}"}} 0.0' in text


def test_one_row_requests_are_binned_at_the_flush_and_batches_when_answered(make_client) -> None:
    client, registry = make_client(limits=ServingLimits(psi_every=3))
    metrics = client.app.state.metrics
    client.portal.call(metrics.stop_flushing)  # the lifespan's timer: only collections flush
    rows = features().head(4).to_numpy()
    for row in rows[:2]:
        one = {
            "inputs": [
                {"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": row.tolist()}
            ]
        }
        assert client.post(INFER, json=one).status_code == 200
    assert [len(held) for held in metrics.served] == [2, 2, 2]  # held till the flush
    batch = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 30],
                "datatype": "FP64",
                "data": rows[2:].ravel().tolist(),
            }
        ]
    }
    held = [len(h) for h in metrics.served]
    assert client.post(INFER, json=batch).status_code == 200
    assert [len(h) for h in metrics.served] == held  # the batch is not held
    count = metric_value(
        registry, "slipway_predictions_total", model="slipway", version=VERSION, **{"class": "0"}
    ) + metric_value(
        registry, "slipway_predictions_total", model="slipway", version=VERSION, **{"class": "1"}
    )
    assert count == 4  # the collection flushed the one-row requests: every prediction counted
    assert [len(held) for held in metrics.served] == [0, 0, 0]
    assert metrics.drift.requests == 3


def test_feature_psi_is_published_every_k_requests(make_client) -> None:
    client, registry = make_client(limits=ServingLimits(psi_every=2))
    labels = {"model": "slipway", "version": VERSION, "feature": "mean_radius"}
    # 200 rows of the largest tumours: far from the training distribution
    big = features().sort_values("mean_radius").tail(200).to_numpy().ravel().tolist()
    body = {"inputs": [{"name": "input-0", "shape": [200, 30], "datatype": "FP64", "data": big}]}
    client.post(INFER, json=body)
    assert metric_value(registry, "slipway_feature_psi", **labels) == 0  # not yet: every 2nd
    client.post(INFER, json=body)
    client.get("/v2/health/live")  # the PSI update runs after the response, on the loop
    assert metric_value(registry, "slipway_feature_psi", **labels) > 1.0
