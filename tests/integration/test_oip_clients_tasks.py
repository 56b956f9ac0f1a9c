"""The official OIP clients against a real ``slipway serve`` of each shipped dataset's model.

The shipped penguins (multiclass: text labels, categoricals ``island`` and a nullable ``sex``,
nullable measurements) and diamonds (regression, 53,940 rows: categoricals ``cut``, ``color``,
``clarity``) tables, with their committed specs, are trained (a linear model: the grid is not
what is tested), judged and promoted in process by the real search, evaluate and promote code (:func:`tests.model.test_promote_tasks.promote`: a
SQLite MLflow registry, the local model store, the EFS folder); ``slipway serve`` then serves the
promoted package from that EFS folder. KServe's ``InferenceRESTClient`` and ``tritonclient.http``
send the categoricals as ``BYTES`` (strings), binary tensor data on and off; the answers must
equal the promoted scikit-learn model's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.config import load_settings
from slipway.data import load_dataset_spec
from slipway.data.shipped import diamonds_frame, penguins_frame
from tests.model.test_promote_tasks import LINEAR, promote
from tests.support import REPO
from tests.support.serving import serve_process

pytestmark = pytest.mark.integration

MODEL = "slipway"
PARAMS = {
    "penguins": {
        "search": {"cv_folds": 3, "scoring": "f1_macro", "candidates": LINEAR},
        "evaluate": {"thresholds": {"f1_macro": 0.9}},
    },
    "diamonds": {
        "search": {"cv_folds": 3, "candidates": LINEAR},
        "evaluate": {"primary_metric": "rmse", "thresholds": {"rmse": 1500.0, "r2": 0.88}},
    },
}


@dataclass
class Served:
    base: str
    version: str
    model: Any  # the promoted scikit-learn Pipeline, as read back from the package
    holdout: pd.DataFrame  # feature_frame of the holdout: NaN and "" where values are missing
    spec: Any


def _serve(root: Path, frame: pd.DataFrame, spec: Any, raw: dict) -> Iterator[Served]:
    settings = load_settings(state_dir=root / "state", git_commit="0" * 40)
    promotion, _, model, _, holdout, _ = promote(frame, spec, raw, settings, root)
    assert promotion.efs_path is not None
    (root / "serve").mkdir()
    with serve_process(
        root / "serve", efs=Path(settings.efs_root), version=str(promotion.version_code)
    ) as (_, base, _, _):
        yield Served(base, str(promotion.version_code), model, holdout, spec)


@pytest.fixture(scope="module")
def penguins(tmp_path_factory) -> Iterator[Served]:
    spec = load_dataset_spec(REPO / "data/penguins/dataset.yaml")
    yield from _serve(
        tmp_path_factory.mktemp("penguins"), penguins_frame(), spec, PARAMS["penguins"]
    )


@pytest.fixture(scope="module")
def diamonds(tmp_path_factory) -> Iterator[Served]:
    spec = load_dataset_spec(REPO / "data/diamonds/dataset.yaml")
    yield from _serve(
        tmp_path_factory.mktemp("diamonds"), diamonds_frame(), spec, PARAMS["diamonds"]
    )


def arrays(x: pd.DataFrame, spec: Any) -> list[tuple[str, str, np.ndarray]]:
    """``(name, datatype, [N, 1] array)`` per feature: strings for categoricals (``""`` when
    missing), bools for booleans, float64 (NaN when missing) for numbers."""
    out = []
    for feature in spec.features:
        column = x[feature.name].to_numpy()
        if feature.kind == "categorical":
            out.append((feature.name, "BYTES", column.astype(object).reshape(-1, 1)))
        elif feature.kind == "boolean":
            out.append((feature.name, "BOOL", (column == 1.0).reshape(-1, 1)))
        else:
            out.append((feature.name, "FP64", column.astype(np.float64).reshape(-1, 1)))
    return out


def text(values: Any) -> list[str]:
    flat = np.asarray(values).reshape(-1).tolist()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in flat]


# --- KServe ---------------------------------------------------------------------------------


def kserve_infer(served: Served, x: pd.DataFrame, binary: bool, outputs: list[str] | None = None):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    tensors = []
    for name, datatype, array in arrays(x, served.spec):
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    requested = [RequestedOutput(o) for o in outputs] if outputs else None
    request = InferRequest(MODEL, tensors, request_id="k-1", request_outputs=requested)

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await client.infer(served.base, request, model_name=MODEL)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert (response.model_name, response.id) == (MODEL, "k-1")
    return {output.name: output.as_numpy() for output in response.outputs}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_string_inputs_multiclass(penguins: Served, binary: bool) -> None:
    # JSON has no NaN: the JSON requests take the rows with every number present
    x = penguins.holdout if binary else penguins.holdout.dropna()
    assert x["sex"].eq("").any() or not binary  # missing categoricals go through as ""
    out = kserve_infer(penguins, x, binary)
    assert text(out["label"]) == penguins.model.predict(x).tolist()
    assert out["probability"].shape == (len(x), 3)
    np.testing.assert_allclose(out["probability"], penguins.model.predict_proba(x), atol=1e-5)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_string_inputs_regression(diamonds: Served, binary: bool) -> None:
    x = diamonds.holdout.iloc[:25]
    out = kserve_infer(diamonds, x, binary, outputs=["value"])
    assert list(out) == ["value"]
    np.testing.assert_allclose(out["value"], diamonds.model.predict(x), rtol=1e-9)


# --- Triton ---------------------------------------------------------------------------------


def triton_infer(served: Served, x: pd.DataFrame, binary: bool, outputs: list[str] | None = None):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(served.base.removeprefix("http://"))
    try:
        tensors = []
        for name, datatype, array in arrays(x, served.spec):
            tensor = httpclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            tensors.append(tensor)
        requested = (
            [httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs]
            if outputs
            else None
        )
        result = client.infer(MODEL, tensors, outputs=requested, model_version=served.version)
        names = [o["name"] for o in result.get_response()["outputs"]]
        return {name: result.as_numpy(name) for name in names}, client.get_model_metadata(MODEL)
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_string_inputs_multiclass(penguins: Served, binary: bool) -> None:
    x = penguins.holdout if binary else penguins.holdout.dropna()
    out, meta = triton_infer(penguins, x, binary, outputs=["label", "probability"])
    assert text(out["label"]) == penguins.model.predict(x).tolist()
    np.testing.assert_allclose(
        out["probability"].reshape(len(x), 3), penguins.model.predict_proba(x), atol=1e-5
    )
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "island": "BYTES",
        "bill_length_mm": "FP64",
        "bill_depth_mm": "FP64",
        "flipper_length_mm": "FP64",
        "body_mass_g": "FP64",
        "sex": "BYTES",
        "year": "FP64",
    }
    assert meta["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [-1]}


def test_triton_defaults_regression(diamonds: Served) -> None:
    x = diamonds.holdout.iloc[:40]
    out, meta = triton_infer(diamonds, x, binary=True)
    assert list(out) == ["value"]
    np.testing.assert_allclose(out["value"], diamonds.model.predict(x), rtol=1e-9)
    assert meta["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    kinds = {f.name: f.kind for f in diamonds.spec.features}
    assert (
        {i["name"] for i in meta["inputs"] if i["datatype"] == "BYTES"}
        == {name for name, kind in kinds.items() if kind == "categorical"}
        == {"cut", "color", "clarity"}
    )


def test_triton_refuses_a_number_for_a_categorical_naming_it(penguins: Served) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    x = penguins.holdout.dropna().iloc[:2]
    client = httpclient.InferenceServerClient(penguins.base.removeprefix("http://"))
    try:
        tensors = []
        for name, datatype, array in arrays(x, penguins.spec):
            if name == "island":
                datatype, array = "FP64", np.zeros((len(x), 1))
            tensor = httpclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        with pytest.raises(InferenceServerException, match="takes datatype BYTES") as caught:
            client.infer(MODEL, tensors)
    finally:
        client.close()
    assert caught.value.status() == "400"
