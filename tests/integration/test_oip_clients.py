"""The official Open Inference Protocol clients, unmodified, against a real ``slipway serve``.

KServe's ``InferenceRESTClient`` (protocol v2) and Triton's ``tritonclient.http``: both with
binary tensor data on and off, requested outputs, several rows, FP32 and FP64; the predictions
must equal the in-process scikit-learn model's.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.serving import MODEL, VERSION, features, serve_process, trained

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_process(tmp_path_factory.mktemp("oip")) as (_, base, _, _):
        yield base


def rows(n: int, start: int = 0) -> pd.DataFrame:
    return features().iloc[start : start + n]


def expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=features().columns)
    model = trained()
    return model.predict(frame), model.predict_proba(frame)[:, 1]


def assert_predictions(x: np.ndarray, labels, proba) -> None:
    want_labels, want_proba = expected(x)
    assert np.asarray(labels).tolist() == want_labels.tolist()
    np.testing.assert_allclose(np.asarray(proba, dtype=np.float64), want_proba, atol=1e-9)


# --- KServe ---------------------------------------------------------------------------------


def kserve_infer(base: str, request, response_headers: dict | None = None):
    from kserve import InferenceRESTClient, RESTConfig

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await client.infer(
                base, request, model_name=MODEL, response_headers=response_headers
            )
        finally:
            await client.close()

    return asyncio.run(call())


def kserve_outputs(response) -> dict[str, np.ndarray]:
    return {output.name: output.as_numpy() for output in response.outputs}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["FP64", "FP32"])
def test_kserve_numpy_inputs(base_url: str, binary: bool, dtype) -> None:
    from kserve import InferInput, InferRequest

    x = rows(6, start=15).to_numpy().astype(dtype)
    tensor = InferInput("input-0", list(x.shape), "FP64" if dtype == np.float64 else "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    response = kserve_infer(base_url, InferRequest(MODEL, [tensor], request_id="k-1"))
    assert (response.model_name, response.id) == (MODEL, "k-1")
    out = kserve_outputs(response)
    assert out["label"].dtype == np.int64
    assert_predictions(x, out["label"], out["probability"])


def test_kserve_lists_in_the_column_layout(base_url: str) -> None:
    from kserve import InferInput, InferRequest

    x = rows(4, start=100)
    tensors = [InferInput(f, [len(x)], "FP64", data=x[f].tolist()) for f in x.columns]
    out = kserve_outputs(kserve_infer(base_url, InferRequest(MODEL, tensors)))
    assert_predictions(x.to_numpy(), out["label"], out["probability"])


def test_kserve_binary_outputs_and_requested_outputs(base_url: str) -> None:
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    x = rows(3, start=200).to_numpy()
    tensor = InferInput("input-0", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x)  # the default: binary
    request = InferRequest(
        MODEL,
        [tensor],
        request_outputs=[RequestedOutput("probability", parameters={"binary_data": True})],
    )
    headers: dict = {}
    response = kserve_infer(base_url, request, headers)
    assert [o.name for o in response.outputs] == ["probability"]
    assert headers["content-type"] == "application/octet-stream"
    # the JSON part, then 3 float64s (the client drops binary_data_size once it has decoded them)
    assert int(headers["content-length"]) - int(headers["inference-header-content-length"]) == 24
    np.testing.assert_allclose(response.outputs[0].as_numpy(), expected(x)[1], atol=1e-9)


def test_kserve_readiness(base_url: str) -> None:
    from kserve import InferenceRESTClient, RESTConfig

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return (
                await client.is_server_ready(base_url),
                await client.is_server_live(base_url),
                await client.is_model_ready(base_url, MODEL),
            )
        finally:
            await client.close()

    assert asyncio.run(call()) == (True, True, True)


# --- Triton ---------------------------------------------------------------------------------


@pytest.fixture
def triton(base_url: str):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(base_url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


def triton_input(x: np.ndarray, binary: bool):
    import tritonclient.http as httpclient

    datatype = {np.float64: "FP64", np.float32: "FP32"}[x.dtype.type]
    tensor = httpclient.InferInput("input-0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["FP64", "FP32"])
def test_triton_defaults(triton, dtype) -> None:
    x = rows(5, start=300).to_numpy().astype(dtype)
    result = triton.infer(MODEL, [triton_input(x, binary=True)])  # binary in and out
    assert result.get_response()["model_version"] == VERSION
    assert result.get_output("label")["parameters"]["binary_data_size"] == 40
    assert_predictions(x, result.as_numpy("label"), result.as_numpy("probability"))


def test_triton_binary_off(triton) -> None:
    import tritonclient.http as httpclient

    x = rows(7, start=400).to_numpy()
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=False)
        for name in ("label", "probability")
    ]
    result = triton.infer(MODEL, [triton_input(x, binary=False)], outputs=outputs, request_id="t-2")
    response = result.get_response()
    assert response["id"] == "t-2"
    assert all("data" in o for o in response["outputs"])
    assert_predictions(x, result.as_numpy("label"), result.as_numpy("probability"))


def test_triton_requested_outputs_and_version(triton) -> None:
    import tritonclient.http as httpclient

    x = rows(2, start=50).to_numpy()
    result = triton.infer(
        MODEL,
        [triton_input(x, binary=True)],
        outputs=[httpclient.InferRequestedOutput("label")],
        model_version=VERSION,
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probability") is None
    assert result.as_numpy("label").tolist() == expected(x)[0].tolist()


def test_triton_other_version_is_404_naming_the_served(triton) -> None:
    from tritonclient.utils import InferenceServerException

    x = rows(1).to_numpy()
    with pytest.raises(InferenceServerException, match=VERSION) as caught:
        triton.infer(MODEL, [triton_input(x, binary=True)], model_version="v1-other")
    assert caught.value.status() == "404"


def test_triton_health_and_metadata(triton) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert triton.is_model_ready(MODEL, model_version=VERSION)
    assert not triton.is_model_ready(MODEL, model_version="v1-other")
    server = triton.get_server_metadata()
    assert server["extensions"] == ["binary_tensor_data"]
    meta = triton.get_model_metadata(MODEL)
    assert meta["versions"] == [VERSION]
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
    assert triton.get_model_metadata(MODEL, model_version=VERSION) == meta


# --- the examples of docs/serving.md ---------------------------------------------------------


def doc_examples() -> list[str]:
    doc = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    heredoc = re.findall(r"python - <<'PY'\n(.*?)PY\n", doc, re.S)
    return heredoc + re.findall(r"```python\n(.*?)```", doc, re.S)


def test_the_documented_examples_run(base_url: str) -> None:
    examples = doc_examples()
    # what each prints: the raw binary request, KServe's outputs, Triton's metadata
    markers = ["'binary_data_size': 8", "'probability': array(", VERSION]
    assert len(examples) == len(markers)
    for code, marker in zip(examples, markers, strict=True):
        code = code.replace("localhost:8080", base_url.removeprefix("http://"))
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert marker in done.stdout, done.stdout
