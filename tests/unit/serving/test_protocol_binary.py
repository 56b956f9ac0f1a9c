"""The binary tensor data extension, media types, versioned routes, parameters and outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from slipway.serving import ServingLimits
from slipway.serving.binary import decode_tensor, encode_tensor, split_body
from slipway.serving.errors import InvalidInput
from tests.support.serving import INFER, VERSION, features, infer_body, metric_value, trained

HEADER = "inference-header-content-length"
VERSIONED = f"/v2/models/slipway/versions/{VERSION}"


def binary_request(
    arrays: dict[str, tuple[str, np.ndarray]], **extra
) -> tuple[bytes, dict[str, str]]:
    """A body with every tensor in the binary part, and its headers (as the clients build it)."""
    inputs, raw = [], []
    for name, (datatype, array) in arrays.items():
        blob = encode_tensor(array, datatype)
        inputs.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        raw.append(blob)
    header = json.dumps({"inputs": inputs, **extra}).encode()
    return b"".join([header, *raw]), {
        HEADER: str(len(header)),
        "content-type": "application/octet-stream",
    }


def split_response(response) -> tuple[dict, bytes]:
    n = int(response.headers[HEADER])
    return json.loads(response.content[:n]), response.content[n:]


def expected(x) -> tuple[list[int], np.ndarray]:
    x = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=features().columns)
    model = trained()
    return model.predict(x).tolist(), model.predict_proba(x)[:, 1]


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP64", np.array([[1.5, -2.0], [3.0, 1e300]])),
        ("FP32", np.array([1.5, -2.25], dtype=np.float32)),
        ("INT64", np.array([[2**62, -1]])),
        ("INT32", np.array([7, -(2**31)], dtype=np.int32)),
        ("BOOL", np.array([True, False, True])),
        ("BYTES", np.array([b"ab", b"", "é".encode()], dtype=object)),
    ],
)
def test_raw_tensors_round_trip_little_endian(datatype: str, array: np.ndarray) -> None:
    blob = encode_tensor(array, datatype)
    decoded = decode_tensor(datatype, array.size, memoryview(blob), "t")
    assert decoded.tolist() == array.ravel().tolist()
    if datatype == "INT32":
        assert blob[:4] == (7).to_bytes(4, "little")
    if datatype == "BYTES":
        assert blob[:6] == b"\x02\x00\x00\x00ab"


@pytest.mark.parametrize(
    ("datatype", "raw", "match"),
    [
        ("FP64", b"\x00" * 15, "8 bytes per element"),
        ("INT32", b"\x00" * 12, "4 bytes per element"),
        ("BOOL", b"\x00\x02", "0 or 1"),
        ("BYTES", b"\x05\x00\x00\x00ab", "longer than the data"),
        ("BYTES", b"\x01\x00", "ends before"),
        ("BYTES", b"\x00\x00\x00\x00\x00\x00\x00\x00x", "longer than the shape"),
    ],
)
def test_raw_tensors_of_the_wrong_size_are_refused(datatype: str, raw: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        decode_tensor(datatype, 2, memoryview(raw), "t")


def test_split_body_checks_the_header_length() -> None:
    head, rest = split_body(b'{"a":1}xyz', "7")
    assert (head, bytes(rest)) == (b'{"a":1}', b"xyz")
    for bad in ("8x", "-1", "²", "11"):
        with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
            split_body(b'{"a":1}xyz', bad)


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT64", "INT32"])
def test_binary_input_matches_scikit_learn(datatype: str, served) -> None:
    client, _ = served
    x = features().iloc[20:25]
    dtype = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32}
    array = x.to_numpy().astype(dtype[datatype])
    content, headers = binary_request({"input-0": (datatype, array)})
    response = client.post(INFER, content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert HEADER not in response.headers  # JSON outputs: not asked for binary
    label, proba = response.json()["outputs"]
    want_labels, want_proba = expected(array.astype(np.float64))
    assert label["data"] == want_labels
    np.testing.assert_allclose(proba["data"], want_proba, atol=1e-9)


def test_binary_columns_and_json_columns_can_mix(served) -> None:
    client, _ = served
    x = features().iloc[30:33]
    names = list(x.columns)
    arrays = {f: ("FP32", x[f].to_numpy(np.float32)) for f in names[:10]}
    content, headers = binary_request(arrays)
    header = json.loads(content[: int(headers[HEADER])])
    header["inputs"] += [
        {"name": f, "shape": [3, 1], "datatype": "INT64", "data": [[int(v)] for v in x[f]]}
        for f in names[10:]
    ]
    head = json.dumps(header).encode()
    body = head + content[int(headers[HEADER]) :]
    response = client.post(INFER, content=body, headers={HEADER: str(len(head))})
    assert response.status_code == 200, response.text
    rows = np.column_stack(
        [x[f].to_numpy(np.float32).astype(np.float64) for f in names[:10]]
        + [x[f].astype(int).to_numpy(np.float64) for f in names[10:]]
    )
    np.testing.assert_allclose(response.json()["outputs"][1]["data"], expected(rows)[1], atol=1e-9)


def test_binary_outputs_when_asked_for_the_whole_request(served) -> None:
    client, _ = served
    x = features().iloc[:4]
    content, headers = binary_request(
        {"input-0": ("FP64", x.to_numpy())}, parameters={"binary_data_output": True}
    )
    response = client.post(INFER, content=content, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header, raw = split_response(response)
    label, proba = header["outputs"]
    assert (label["parameters"], proba["parameters"]) == (
        {"binary_data_size": 32},
        {"binary_data_size": 32},
    )
    assert "data" not in label
    assert "data" not in proba
    assert len(raw) == 64
    want_labels, want_proba = expected(x)
    assert np.frombuffer(raw[:32], "<i8").tolist() == want_labels
    np.testing.assert_allclose(np.frombuffer(raw[32:], "<f8"), want_proba, atol=1e-9)


def test_requested_outputs_only_those_and_per_output_binary(served) -> None:
    client, _ = served
    body = infer_body(rows=2)
    only = client.post(INFER, json={**body, "outputs": [{"name": "probability"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["probability"]
    mixed = client.post(
        INFER,
        json={
            **body,
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "probability", "parameters": {"binary_data": False}},
                {"name": "label"},
            ],
        },
    )
    header, raw = split_response(mixed)
    proba, label = header["outputs"]
    assert proba["data"] == only["outputs"][0]["data"]
    assert label["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(raw, "<i8").tolist() == expected(features().iloc[:2])[0]


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        ([{"name": "score"}], "label, probability"),
        ([{"name": "label"}, {"name": "label"}], "once"),
        ([], "non-empty"),
        ([{"name": "label", "parameters": {"binary_data": "yes"}}], "true or false"),
        ([{"name": "label", "parameters": {"classification": 2}}], "not supported"),
    ],
)
def test_bad_requested_outputs_are_400_naming_the_valid_ones(outputs, match, served) -> None:
    client, _ = served
    response = client.post(INFER, json={**infer_body(), "outputs": outputs})
    assert response.status_code == 400
    assert match in response.json()["error"]
    assert "score" not in response.json()["error"]


def test_no_content_type_and_octet_stream_are_json_too(served) -> None:
    client, _ = served
    content = json.dumps(infer_body()).encode()
    answers = [
        client.post(INFER, content=content, headers=headers)
        for headers in ({}, {"content-type": "application/octet-stream"})
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["outputs"] == answers[1].json()["outputs"]


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "multipart/form-data"])
def test_other_media_types_are_415_naming_the_accepted(content_type: str, served) -> None:
    client, _ = served
    content = json.dumps(infer_body()).encode()
    response = client.post(INFER, content=content, headers={"content-type": content_type})
    assert response.status_code == 415
    message = response.json()["error"]
    assert "application/json" in message
    assert "application/octet-stream" in message
    assert content_type not in message


def test_compressed_bodies_are_415(served) -> None:
    client, _ = served
    response = client.post(
        INFER, content=b"\x1f\x8b", headers={"content-encoding": "gzip", "content-type": "x"}
    )
    assert response.status_code == 415
    response = client.post(INFER, content=b"\x1f\x8b", headers={"content-encoding": "gzip"})
    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["error"]


def test_binary_framing_errors_are_400(served) -> None:
    client, _ = served
    x = features().iloc[:1].to_numpy()
    content, headers = binary_request({"input-0": ("FP64", x)})
    n = int(headers[HEADER])
    cases = {
        "missing bytes": (content[:-8], headers, "add up to more"),
        "extra bytes": (content + b"\x00" * 8, headers, "longer than"),
        "no header length": (content[:n], {}, "Inference-Header-Content-Length"),
        "header past body": (content, {HEADER: str(len(content) + 1)}, "larger than"),
        "NaN in binary": (
            content[:n] + encode_tensor(np.full((1, 30), np.nan), "FP64"),
            headers,
            "finite",
        ),
    }
    for case, (body, case_headers, match) in cases.items():
        response = client.post(INFER, content=body, headers=case_headers)
        assert response.status_code == 400, case
        assert match in response.json()["error"], case
    header = json.loads(content[:n])
    header["inputs"][0]["data"] = x.ravel().tolist()
    both = json.dumps(header).encode()
    response = client.post(INFER, content=both + content[n:], headers={HEADER: str(len(both))})
    assert response.status_code == 400
    assert "not both" in response.json()["error"]
    assert client.post(INFER, content=content, headers=headers).status_code == 200


def test_versioned_routes_serve_the_served_version_only(served) -> None:
    client, _ = served
    assert client.get(f"{VERSIONED}/ready").json() == {"name": "slipway", "ready": True}
    assert client.get(VERSIONED).json() == client.get("/v2/models/slipway").json()
    versioned = client.post(f"{VERSIONED}/infer", json={**infer_body(rows=2), "id": "v"})
    plain = client.post(INFER, json={**infer_body(rows=2), "id": "v"})
    assert versioned.status_code == 200
    assert versioned.json() == plain.json()
    for response in (
        client.get("/v2/models/slipway/versions/v1-other/ready"),
        client.get("/v2/models/slipway/versions/v1-other"),
        client.post("/v2/models/slipway/versions/v1-other/infer", json=infer_body()),
    ):
        assert response.status_code == 404
        assert VERSION in response.json()["error"]
        assert "v1-other" not in response.json()["error"]
    other_model = client.post(f"/v2/models/other/versions/{VERSION}/infer", json=infer_body())
    assert other_model.status_code == 404


def test_versioned_infer_is_limited_and_labelled_as_infer(make_client) -> None:
    client, registry = make_client(limits=ServingLimits(max_concurrency=0))
    assert client.post(f"{VERSIONED}/infer", json=infer_body()).status_code == 429
    assert metric_value(registry, "slipway_rejected_requests_total", reason="concurrency") == 1
    client, registry = make_client()
    client.post(f"{VERSIONED}/infer", json=infer_body())
    count = metric_value(
        registry,
        "slipway_http_requests_total",
        route="/v2/models/{name}/infer",
        method="POST",
        status_class="2xx",
    )
    assert count == 1


def test_server_metadata_lists_the_implemented_extensions(served) -> None:
    client, _ = served
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_unknown_parameters_are_ignored_and_extension_ones_refused(served) -> None:
    client, _ = served
    body = infer_body()
    body["parameters"] = {"priority": 1, "timeout": 100, "custom": "x"}
    body["inputs"][0]["parameters"] = {"anything": True}
    assert client.post(INFER, json=body).status_code == 200
    body["inputs"][0]["parameters"] = {"shared_memory_region": "r"}
    response = client.post(INFER, json=body)
    assert response.status_code == 400
    assert "shared-memory" in response.json()["error"]
    for bad in ({"binary_data_output": 1}, []):
        response = client.post(INFER, json={**infer_body(), "parameters": bad})
        assert response.status_code == 400


def test_json_datatypes_accepted_for_numeric_features(served) -> None:
    client, _ = served
    x = features().iloc[40:42]
    ints = x.round().astype(int)
    response = client.post(
        INFER,
        json={
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 30],
                    "datatype": "INT32",
                    "data": ints.to_numpy().ravel().tolist(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["outputs"][1]["data"], expected(ints.astype(float))[1], atol=1e-9
    )
    for datatype, data in (("INT64", [1.5] * 30), ("BOOL", [True] * 30), ("BYTES", ["a"] * 30)):
        tensor = {"name": "input-0", "shape": [1, 30], "datatype": datatype, "data": data}
        assert client.post(INFER, json={"inputs": [tensor]}).status_code == 400, datatype
