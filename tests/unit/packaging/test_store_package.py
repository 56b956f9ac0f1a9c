"""Version codes, the create-only local store, and verified model packages."""

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipway.config import load_settings
from slipway.data.table import DATASET_VERSIONS, build_dataset, split_dataset
from slipway.errors import ConfigError, ModelPackageError, VersionExistsError
from slipway.packaging.package import PackageInfo, build_package, load_package, training_statistics
from slipway.packaging.store import MANIFEST, LocalModelStore, open_model_store, store_at_url
from slipway.versions import make_version_code, parse_version_code


def test_version_code_format_links_registry_version_date_and_run():
    code = make_version_code(
        3, "1F2E3D4C5B6A79880011223344556677", datetime(2026, 11, 28, tzinfo=UTC)
    )
    assert code == "v3-20261128-1f2e3d4c"
    parsed = parse_version_code(code)
    assert (parsed.registry_version, parsed.run_prefix, str(parsed)) == (3, "1f2e3d4c", code)


@given(st.integers(1, 10**6), st.text("0123456789abcdef", min_size=32, max_size=32))
def test_version_code_round_trips(version, run_id):
    code = make_version_code(version, run_id)
    assert str(parse_version_code(code)) == code


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "v0-20261128-1f2e3d4c",
        "v3-2026112-1f2e3d4c",
        "v3-20261128-1F2E3D4C",
        "v3-20261340-1f2e3d4c",
        "3-20261128-1f2e3d4c",
    ],
)
def test_bad_version_codes_are_refused_with_the_expected_form(bad):
    with pytest.raises(ConfigError, match=r"v<registry version>|impossible date"):
        parse_version_code(bad)


def test_version_code_needs_hex_run_id():
    with pytest.raises(ConfigError, match="8 hex"):
        make_version_code(1, "not-a-run")


@pytest.fixture(scope="module")
def trained():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = build_dataset(DATASET_VERSIONS["v1"])
    train, _ = split_dataset(frame, 0.2, 42)
    x = train.drop(columns=["diagnosis"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        x, train["diagnosis"]
    )
    return model, x


def _info(code="v1-20261128-0123abcd"):
    return PackageInfo(
        "slipway", code, "0123abcd" * 4, 1, {"version": "v1", "md5": "x"}, "abc", {"roc_auc": 0.99}
    )


def test_package_round_trip_verifies_and_loads(tmp_path, trained):
    model, x = trained
    store = LocalModelStore(tmp_path)
    files = build_package(model, x, _info(), 0.37)
    assert list(files)[-1] == MANIFEST
    store.put_package("slipway", "v1-20261128-0123abcd", files)
    loaded, manifest = load_package(store, "slipway", "v1-20261128-0123abcd")
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))
    assert manifest["mlflow_run_id"] == "0123abcd" * 4
    assert [f["name"] for f in manifest["features"]] == list(x.columns)
    assert {f["dtype"] for f in manifest["features"]} == {"float64"}
    assert manifest["training_positive_rate"] == 0.37
    assert store.list_versions("slipway") == ["v1-20261128-0123abcd"]


def test_store_is_create_only(tmp_path, trained):
    model, x = trained
    store = LocalModelStore(tmp_path)
    files = build_package(model, x, _info(), 0.37)
    store.put_package("slipway", "v1-20261128-0123abcd", files)
    before = (tmp_path / "slipway" / "v1-20261128-0123abcd" / "model.skops").read_bytes()
    with pytest.raises(VersionExistsError, match="v1-20261128-0123abcd already exists"):
        store.put_package(
            "slipway", "v1-20261128-0123abcd", {"model.skops": b"other", MANIFEST: b"{}"}
        )
    assert (tmp_path / "slipway" / "v1-20261128-0123abcd" / "model.skops").read_bytes() == before
    # no temporary folders are left beside the package
    assert [p.name for p in (tmp_path / "slipway").iterdir()] == ["v1-20261128-0123abcd"]


def test_failed_write_leaves_nothing(tmp_path, trained, monkeypatch):
    model, x = trained
    store = LocalModelStore(tmp_path)
    with pytest.raises(ModelPackageError, match=r"needs a manifest\.json"):
        store.put_package("slipway", "v1-20261128-0123abcd", {"model.skops": b"x"})
    assert not (tmp_path / "slipway" / "v1-20261128-0123abcd").exists()

    files = build_package(model, x, _info(), 0.37)
    real_write = Path.write_bytes
    written = []

    def write_then_fail(self, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(self)
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        store.put_package("slipway", "v1-20261128-0123abcd", files)
    monkeypatch.undo()
    assert len(written) == 1  # the first file was written, then the write failed
    assert list((tmp_path / "slipway").iterdir()) == []  # the temporary folder is gone
    assert not store.exists("slipway", "v1-20261128-0123abcd")


def test_package_reuses_the_given_skops_bytes(trained):
    # skops zips carry timestamps: a retried promotion must upload exactly the saved bytes
    import skops.io as sio

    model, x = trained
    saved = sio.dumps(model)
    files = build_package(model, x, _info(), 0.37, onnx=False, blob=saved)
    assert files["model.skops"] == saved
    manifest = json.loads(files[MANIFEST])
    assert manifest["files"]["model.skops"]["size"] == len(saved)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_or_truncated_model_is_refused_before_loading(
    tmp_path, trained, damage, monkeypatch
):
    model, x = trained
    store = LocalModelStore(tmp_path)
    store.put_package("slipway", "v1-20261128-0123abcd", build_package(model, x, _info(), 0.37))
    path = tmp_path / "slipway" / "v1-20261128-0123abcd" / "model.skops"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 10]
    path.write_bytes(bytes(data))
    import skops.io

    calls = []
    monkeypatch.setattr(skops.io, "loads", lambda *a, **k: calls.append(a))
    with pytest.raises(ModelPackageError, match=r"SHA-256|bytes, the manifest says"):
        load_package(store, "slipway", "v1-20261128-0123abcd")
    assert calls == []  # never deserialised


def test_manifest_must_be_a_slipway_manifest(tmp_path, trained):
    model, x = trained
    store = LocalModelStore(tmp_path)
    files = build_package(model, x, _info(), 0.37)
    files[MANIFEST] = json.dumps({"format": 99}).encode()
    store.put_package("slipway", "v1-20261128-0123abcd", files)
    with pytest.raises(ModelPackageError, match="not a format-1 manifest"):
        load_package(store, "slipway", "v1-20261128-0123abcd")


def test_training_statistics_bins_cover_all_rows(trained):
    _, x = trained
    stats = training_statistics(x)
    for name, s in stats.items():
        assert len(s["fractions"]) == len(s["edges"]) + 1, name
        assert sum(s["fractions"]) == pytest.approx(1.0)
        assert s["min"] <= s["mean"] <= s["max"]
        assert s["edges"] == sorted(s["edges"])


def test_open_model_store_opens_the_configured_store_and_refuses_unknown_schemes(tmp_path):
    settings = load_settings(state_dir=tmp_path, model_store_url=str(tmp_path / "models"))
    store = open_model_store(settings)
    assert isinstance(store, LocalModelStore)
    assert store.root == tmp_path / "models"
    with pytest.raises(ModelPackageError, match="unsupported model store URL 'gs://x'"):
        store_at_url("gs://x", None, "us-east-1")


def test_a_breast_cancer_package_built_from_its_spec_keeps_what_servers_read():
    # the keys and the ONNX layout the model server reads today, now built the way promotion does
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from slipway.data import breast_cancer_spec, feature_frame
    from slipway.packaging.onnx_model import open_session, predict_onnx
    from slipway.training import build_preprocessor

    spec = breast_cancer_spec()
    train, holdout = split_dataset(build_dataset(DATASET_VERSIONS["v1"]), 0.2, 42)
    x, y = feature_frame(train, spec), train["diagnosis"].to_numpy()
    model = Pipeline(
        [("features", build_preprocessor(spec)), ("clf", LogisticRegression(max_iter=5000))]
    ).fit(x, y)
    files = build_package(
        model, x, _info(), spec=spec, train_y=y, check_x=feature_frame(holdout, spec)
    )
    manifest = json.loads(files[MANIFEST])
    assert [f["name"] for f in manifest["features"]] == spec.feature_names
    assert {(f["dtype"], f["kind"]) for f in manifest["features"]} == {("float64", "numeric")}
    assert (manifest["classes"], manifest["positive_class"]) == ([0, 1], 1)
    assert manifest["training_positive_rate"] == pytest.approx(float(np.mean(y == 1)))
    assert manifest["training_target"]["positive_rate"] == manifest["training_positive_rate"]
    assert all(s["missing"] == 0.0 for s in manifest["training_stats"].values())
    record = manifest["onnx"]
    assert (record["used"], record["layout"], record["attempts"]) == (True, "tensor FP64", [])
    assert record["check_rows"] == len(holdout)
    assert record["inputs"] == [
        {"name": "input", "datatype": "FP64", "shape": [-1, 30], "features": spec.feature_names}
    ]
    session = open_session(files["model.onnx"])  # the original layout: no inputs needed
    labels, proba = predict_onnx(session, feature_frame(holdout, spec).to_numpy())
    np.testing.assert_allclose(
        proba, model.predict_proba(feature_frame(holdout, spec))[:, 1], atol=1e-9
    )
    np.testing.assert_array_equal(labels, model.predict(feature_frame(holdout, spec)))
