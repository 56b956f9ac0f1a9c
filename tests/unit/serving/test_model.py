"""Loading: verified before deserialised; a bad package means not ready, never a crash.

Also: the ONNX copy agrees with scikit-learn, and a package whose ONNX check failed is served by
the skops model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from slipway.packaging.onnx_model import ONNX_FILE
from slipway.packaging.package import MODEL_FILE
from slipway.packaging.store import MANIFEST
from slipway.serving import load_model
from slipway.serving.model import LoadFailure
from tests.support.serving import (
    INFER,
    VERSION,
    features,
    infer_body,
    manifest_of,
    metric_value,
    package_files,
    trained,
)


def flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def with_file(name: str, content: bytes) -> dict[str, bytes]:
    files = dict(package_files())
    files[name] = content
    return files


def with_manifest(change) -> dict[str, bytes]:
    """The package with its manifest edited by ``change(manifest)``."""
    manifest = manifest_of(package_files())
    change(manifest)
    return with_file(MANIFEST, json.dumps(manifest).encode())


BROKEN = {
    # case: (files or None for "no package at all", reason)
    "missing package": (None, "missing"),
    "tampered skops": (with_file(MODEL_FILE, flip_byte(package_files()[MODEL_FILE])), "checksum"),
    "truncated skops": (with_file(MODEL_FILE, package_files()[MODEL_FILE][:-100]), "checksum"),
    "tampered onnx": (with_file(ONNX_FILE, flip_byte(package_files()[ONNX_FILE])), "checksum"),
    "truncated manifest": (with_file(MANIFEST, package_files()[MANIFEST][:-50]), "manifest"),
    "manifest of another version": (
        with_file(
            MANIFEST,
            json.dumps(
                {**manifest_of(package_files()), "version_code": "v9-20260101-ffffffff"}
            ).encode(),
        ),
        "manifest",
    ),
    # the drift metric needs every feature's training deciles: without them the package is
    # not servable (it used to be ready and answer every infer with 500)
    "manifest without training_stats": (
        with_manifest(lambda m: m.pop("training_stats")),
        "manifest",
    ),
    "training_stats missing a feature": (
        with_manifest(lambda m: m["training_stats"].pop("mean_radius")),
        "manifest",
    ),
    "training_stats not a mapping": (
        with_manifest(lambda m: m.update(training_stats=[1, 2, 3])),
        "manifest",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_package_is_not_ready_but_alive(case: str, make_client, caplog) -> None:
    files, reason = BROKEN[case]
    client, registry = make_client(files=files, install=files is not None)
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"error": f"model 'slipway' is not ready ({reason})"}
    assert client.get("/v2/models/slipway/ready").status_code == 503
    infer = client.post(INFER, json=infer_body())
    assert infer.status_code == 503
    assert set(infer.json()) == {"error"}
    assert (
        metric_value(registry, "slipway_model_load_failures_total", model="slipway", reason=reason)
        == 1
    )
    assert metric_value(registry, "slipway_model_ready", model="slipway") == 0
    assert "not loaded" in caplog.text
    assert reason in caplog.text
    # unknown model names stay 404 even when not ready
    assert client.post("/v2/models/other/infer", json=infer_body()).status_code == 404


def test_tampered_file_is_never_deserialised(tmp_path: Path, monkeypatch) -> None:
    """The checksum is checked before skops sees a byte."""
    from tests.support.serving import install_package

    install_package(tmp_path, BROKEN["tampered skops"][0])
    calls = []
    monkeypatch.setattr("slipway.serving.model.loads_model", lambda blob: calls.append(blob))
    monkeypatch.setattr("slipway.serving.model.open_session", lambda blob: calls.append(blob))
    with pytest.raises(LoadFailure, match="SHA-256") as failure:
        load_model(tmp_path, "slipway", VERSION)
    assert failure.value.reason == "checksum"
    assert calls == []


def test_no_version_configured_is_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(LoadFailure, match="SLIPWAY_MODEL_VERSION") as failure:
        load_model(tmp_path, "slipway", None)
    assert failure.value.reason == "missing"


def test_onnx_agrees_with_skops_on_every_row(tmp_path: Path) -> None:
    from tests.support.serving import install_package

    install_package(tmp_path, package_files())
    onnx = load_model(tmp_path, "slipway", VERSION)
    assert onnx.runtime == "onnxruntime"
    skops_only = dict(package_files(onnx=False))
    install_package(tmp_path / "b", skops_only)
    reference = load_model(tmp_path / "b", "slipway", VERSION)
    assert reference.runtime == "sklearn"
    assert onnx.rows_session is onnx.predictor  # the server's short way runs it directly
    assert reference.rows_session is None  # scikit-learn: the short way is not for this model
    rows = features().to_numpy()
    labels, proba = onnx.predict(rows)
    ref_labels, ref_proba = reference.predict(rows)
    np.testing.assert_array_equal(labels, ref_labels)
    assert np.max(np.abs(proba - ref_proba)) <= 1e-9
    record = manifest_of(package_files())["onnx"]
    assert record["used"] is True
    assert record["check_rows"] == len(rows)
    assert record["max_abs_probability_difference"] <= 1e-9
    assert manifest_of(package_files())["files"][ONNX_FILE]["format"] == "onnx"


def test_onnx_refused_beyond_tolerance_falls_back_to_skops(make_client, monkeypatch) -> None:
    from slipway.packaging.package import PackageInfo, build_package

    monkeypatch.setattr("slipway.packaging.onnx_model.ONNX_TOLERANCE", -1.0)  # nothing can pass
    info = PackageInfo("slipway", VERSION, "r", 3, {}, "test", {})
    files = build_package(trained(), features(), info, 0.37)
    assert ONNX_FILE not in files
    record = json.loads(files[MANIFEST])["onnx"]
    assert record["used"] is False
    assert record["reason"] == "probabilities differ beyond tolerance"
    assert ONNX_FILE not in json.loads(files[MANIFEST])["files"]
    client, _ = make_client(files=files)
    assert client.get("/v2/models/slipway").json()["platform"] == "sklearn"
    out = client.post(INFER, json=infer_body(rows=3)).json()["outputs"]
    expected = trained().predict_proba(features().iloc[:3])[:, 1]
    np.testing.assert_allclose(out[1]["data"], expected, rtol=0, atol=1e-12)


def test_build_package_without_onnx_keeps_the_old_shape() -> None:
    files = package_files(onnx=False)
    assert sorted(files) == [MANIFEST, MODEL_FILE]
    assert "onnx" not in manifest_of(files)


@contextmanager
def loading(tmp_path: Path, monkeypatch) -> Iterator[tuple[TestClient, threading.Event]]:
    """A started app (background load) whose load blocks until the yielded event is set."""
    from slipway.config import load_settings
    from slipway.serving import create_app
    from slipway.serving import model as model_module
    from tests.support.serving import install_package

    install_package(tmp_path / "efs", package_files())
    release = threading.Event()
    real = model_module.load_model

    def gated(*args, **kwargs):
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_module, "load_model", gated)
    settings = load_settings(state_dir=tmp_path, efs_root=tmp_path / "efs", model_version=VERSION)
    try:
        with TestClient(create_app(settings)) as client:
            yield client, release
    finally:
        release.set()


def test_infer_waits_for_a_model_still_loading(tmp_path: Path, monkeypatch) -> None:
    """With several workers the pod is ready when one worker is; another worker that is still
    loading makes its infer requests wait for the load instead of answering 503, and the wait
    holds no thread of the event loop's default executor (6 on 2 CPUs: a handful of waiting
    requests would starve everything else that uses it)."""
    executor_calls: list[str] = []
    original = asyncio.base_events.BaseEventLoop.run_in_executor

    def recording(self, executor, func, *args):
        executor_calls.append(getattr(func, "__qualname__", repr(func)))
        return original(self, executor, func, *args)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "run_in_executor", recording)
    with loading(tmp_path, monkeypatch) as (client, release):
        assert client.get("/v2/health/ready").status_code == 503
        threading.Timer(0.5, release.set).start()
        started = time.perf_counter()
        response = client.post(INFER, json=infer_body())
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == [1]
        assert time.perf_counter() - started > 0.3
        assert client.get("/v2/health/ready").status_code == 200
    assert executor_calls == []


def test_unknown_model_and_wrong_media_type_do_not_wait_for_the_load(
    tmp_path: Path, monkeypatch
) -> None:
    """404 and 415 need no model: they answer at once, even while the model is loading."""
    monkeypatch.setattr("slipway.serving.infer.LOAD_WAIT_SECONDS", 5.0)
    with loading(tmp_path, monkeypatch) as (client, _):
        started = time.perf_counter()
        other = client.post("/v2/models/other/infer", json=infer_body())
        text = client.post(INFER, content=b"{}", headers={"content-type": "text/plain"})
        elapsed = time.perf_counter() - started
        assert (other.status_code, text.status_code) == (404, 415)
        assert elapsed < 2.0, f"took {elapsed:.2f} s: the checks waited for the load"


def test_infer_answers_503_when_the_load_outlasts_the_wait(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("slipway.serving.infer.LOAD_WAIT_SECONDS", 0.2)
    with loading(tmp_path, monkeypatch) as (client, _):
        started = time.perf_counter()
        response = client.post(INFER, json=infer_body())
        elapsed = time.perf_counter() - started
        assert response.status_code == 503
        assert response.json() == {"error": "model 'slipway' is not ready (loading)"}
        assert 0.15 < elapsed < 2.0


def test_a_plain_model_with_a_per_column_onnx_copy_predicts_its_rows(tmp_path: Path) -> None:
    from slipway.packaging import open_session
    from slipway.packaging.onnx_model import convert_to_onnx, input_layouts
    from slipway.serving.model import LoadedModel
    from tests.support.serving import install_package, trained

    install_package(tmp_path, package_files())
    reference = load_model(tmp_path, "slipway", VERSION)
    columns = list(features().columns)
    layout = input_layouts(columns, {})[1]  # one FP64 input per feature
    records = [i.to_dict() for i in layout]
    session = open_session(convert_to_onnx(trained(), layout), records)
    per_column = LoadedModel(
        VERSION,
        "onnxruntime",
        reference.manifest,
        columns,
        session,
        reference.drift,
        onnx_inputs=records,
    )
    assert per_column.contract.plain
    assert per_column.rows_session is None  # its rows go in as columns: not the short way
    rows = features().to_numpy()[:50]
    labels, proba = per_column.predict(rows)
    want_labels, want_proba = reference.predict(rows)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(proba, want_proba, atol=1e-6)  # within ONNX_TOLERANCE


def test_a_manifest_with_an_unknown_task_is_not_loaded(tmp_path: Path) -> None:
    from tests.support.serving import install_package

    files = dict(package_files())
    manifest = json.loads(files[MANIFEST])
    manifest["task"] = "ranking"
    files[MANIFEST] = json.dumps(manifest).encode()
    install_package(tmp_path, files)
    with pytest.raises(LoadFailure, match="no usable input or output contract") as caught:
        load_model(tmp_path, "slipway", VERSION)
    assert caught.value.reason == "manifest"
