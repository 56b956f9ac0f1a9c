"""Loading the served model: verify every file against the manifest, then deserialise, then ready.

The server prefers the package's ONNX copy (``model.onnx``, checked against scikit-learn at
promotion) and falls back to the skops model when there is none, when the recorded check did not
pass, or when ONNX Runtime cannot open it. A package that is missing, tampered with or truncated
leaves the model *not ready*: the process keeps running (liveness stays 200, readiness 503), the
reason is logged and counted, and nothing from the package is deserialised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slipway.errors import ModelPackageError, SlipwayError
from slipway.packaging import (
    MANIFEST,
    MODEL_FILE,
    ONNX_FILE,
    ONNX_TOLERANCE,
    LocalModelStore,
    loads_model,
    open_session,
    parse_manifest,
    predict_onnx,
    run_onnx,
    verify_file,
)
from slipway.serving.contract import Contract, contract_from_manifest
from slipway.serving.drift import DriftWindow
from slipway.serving.limits import ServingLimits

log = logging.getLogger("slipway.serving")


class LoadFailure(SlipwayError, RuntimeError):
    """A load failed for ``reason`` (a ``slipway_model_load_failures_total`` label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class LoadedModel:
    """A verified, deserialised model and what its manifest says about it."""

    version: str
    runtime: str  # "onnxruntime" or "sklearn"
    manifest: dict[str, Any]
    features: list[str]
    predictor: Any = field(repr=False)
    drift: DriftWindow = field(repr=False)  # built from the manifest's training_stats at load
    contract: Contract = field(default=None, repr=False)  # type: ignore[assignment]
    # the ONNX inputs (manifest["onnx"]["inputs"]); None: the one float64 tensor "input"
    onnx_inputs: list[dict[str, Any]] | None = field(default=None, repr=False)
    rows_session: Any = field(default=None, init=False, repr=False)  # see __post_init__

    def __post_init__(self) -> None:
        if self.contract is None:
            self.contract = contract_from_manifest(self.manifest)
        if self.onnx_inputs is not None and [i["name"] for i in self.onnx_inputs] == ["input"]:
            self.onnx_inputs = None  # the original layout: rows go in as they are
        # the session that predict_onnx runs float64 rows through, for the server's short way
        # (slipway.serving.infer.answer_body); None when predict takes another way
        plain_onnx = self.runtime == "onnxruntime" and self.onnx_inputs is None
        self.rows_session = self.predictor if plain_onnx and self.contract.plain else None

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels int64 [N], positive-class probabilities float64 [N])`` for float64 rows.

        For a plain model (:mod:`slipway.serving.contract`); see :meth:`predict_columns`.
        """
        if self.runtime == "onnxruntime":
            if self.onnx_inputs is None:
                return predict_onnx(self.predictor, rows)
            columns = dict(zip(self.features, rows.T, strict=True))
            out = self.predict_columns(columns)
            return out["label"].astype(np.int64, copy=False), out["probability"]
        import pandas as pd

        proba = self.predictor.predict_proba(pd.DataFrame(rows, columns=self.features))
        classes = np.asarray(self.predictor.classes_, dtype=np.int64)
        return classes[np.argmax(proba, axis=1)], np.ascontiguousarray(
            proba[:, 1], dtype=np.float64
        )

    def predict_columns(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs of the model's task for typed columns (see :meth:`Contract.outputs`).

        Args:
            columns: per feature, float64 ``[N]`` (NaN when missing) or an object array of
                text (``""`` when missing), as :func:`slipway.data.feature_frame` gives them.

        Returns:
            ``{"label": [N], "probability": [N] (binary) or [N, n_classes]}`` for
            classification, with labels as ``int64``, ``bool`` or ``str`` (the label
            datatype); ``{"value": float64 [N]}`` for regression.
        """
        contract = self.contract
        regression = contract.task == "regression"
        labels = None
        if self.runtime == "onnxruntime":
            out = run_onnx(self.predictor, columns_feed(columns, self._inputs()))
            if regression:
                return {"value": np.ascontiguousarray(out["value"].reshape(-1), dtype=np.float64)}
            labels, proba = out["label"], np.asarray(out["probabilities"], dtype=np.float64)
        else:
            import pandas as pd

            frame = pd.DataFrame({name: columns[name] for name in self.features})
            if regression:
                values = self.predictor.predict(frame)
                return {"value": np.ascontiguousarray(values, dtype=np.float64)}
            proba = np.asarray(self.predictor.predict_proba(frame), dtype=np.float64)
        if labels is None:
            labels = np.asarray(contract.classes, dtype=object)[np.argmax(proba, axis=1)]
        if contract.task == "binary":
            proba = np.ascontiguousarray(proba[:, contract.positive_index])
        return {"label": _labels(labels, contract.label_datatype), "probability": proba}

    def _inputs(self) -> list[dict[str, Any]]:
        if self.onnx_inputs is not None:
            return self.onnx_inputs
        return [{"name": "input", "datatype": "FP64", "features": self.features}]


def columns_feed(
    columns: dict[str, np.ndarray], inputs: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """The ONNX Runtime feed of typed columns: :func:`slipway.packaging.onnx_feed` without pandas.

    Args:
        columns: as :meth:`LoadedModel.predict_columns` takes them.
        inputs: the manifest's ``onnx.inputs`` records (``name``, ``datatype``, ``features``).
    """
    dtypes = {"FP64": np.float64, "FP32": np.float32, "BYTES": np.str_}
    feed = {}
    for record in inputs:
        dtype = dtypes[record["datatype"]]
        parts = [np.asarray(columns[f]).astype(dtype) for f in record["features"]]
        feed[record["name"]] = np.column_stack(parts) if len(parts) > 1 else parts[0][:, None]
    return feed


def _labels(labels: np.ndarray, datatype: str) -> np.ndarray:
    """Predicted labels as the label output's datatype: int64, bool or text."""
    if datatype == "INT64":
        return np.asarray(labels).astype(np.int64)
    if datatype == "BOOL":
        return np.asarray(labels).astype(np.bool_)
    return np.asarray([str(v) for v in np.asarray(labels).tolist()], dtype=object)


def load_model(
    efs_root: Path, model: str, version: str | None, limits: ServingLimits | None = None
) -> LoadedModel:
    """Read ``<efs_root>/<model>/<version>/``, verify it, deserialise it.

    Args:
        efs_root: the EFS mount, holding ``<model>/<version>/`` folders.
        model: the model name.
        version: the version code to serve; ``None`` is a missing model.
        limits: where the PSI window's size and period come from (default
            :class:`ServingLimits`).

    Raises:
        LoadFailure: with a reason among ``missing``, ``manifest``, ``checksum``, ``untrusted``,
            ``deserialise``.
    """
    if not version:
        raise LoadFailure(
            "missing", "no model version configured; set SLIPWAY_MODEL_VERSION (or MODEL_VERSION)"
        )
    store = LocalModelStore(efs_root)
    where = store.package_uri(model, version)
    try:
        manifest = parse_manifest(store.read(model, version, MANIFEST), where)
    except ModelPackageError as e:
        reason = "missing" if not (Path(where) / MANIFEST).is_file() else "manifest"
        raise LoadFailure(reason, str(e)) from e
    features = [f.get("name") for f in manifest.get("features", [])]
    if manifest.get("version_code") != version or not features or None in features:
        raise LoadFailure(
            "manifest",
            f"{where}/{MANIFEST} does not describe version {version} with named features",
        )
    try:
        contract = contract_from_manifest(manifest)
    except (KeyError, TypeError, ValueError) as e:
        raise LoadFailure(
            "manifest", f"{where}/{MANIFEST} has no usable input or output contract: {e}"
        ) from e
    limits = limits or ServingLimits()
    try:
        # built here, not on the first request: a package the drift metric cannot use is a bad
        # package (not ready, counted), not a ready server that answers every infer with 500
        drift = DriftWindow(
            features,
            manifest["training_stats"],
            window=limits.psi_window,
            every=limits.psi_every,
            nullable=contract.nullable,
            min_seconds=limits.psi_min_seconds,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise LoadFailure(
            "manifest",
            f"{where}/{MANIFEST} has no usable training_stats (decile edges and fractions, or "
            f"categories and fractions, of every feature): {type(e).__name__} {e}; rebuild the package with "
            "slipway.packaging.package.build_package",
        ) from e
    blobs = {}
    for name in manifest.get("files", {}):
        try:
            blobs[name] = store.read(model, version, name)
            verify_file(manifest, name, blobs[name], where)
        except ModelPackageError as e:
            raise LoadFailure("checksum", str(e)) from e
    if MODEL_FILE not in blobs:
        raise LoadFailure("manifest", f"{where}/{MANIFEST} lists no {MODEL_FILE}")

    if ONNX_FILE in blobs and _onnx_check_passed(manifest):
        inputs = manifest["onnx"].get("inputs")
        try:
            session = open_session(blobs[ONNX_FILE], inputs)
            return LoadedModel(
                version, "onnxruntime", manifest, features, session, drift, contract, inputs
            )
        except Exception as e:  # ONNX Runtime raises its own types; the skops model remains
            log.warning("ONNX model of %s does not open (%s); using the skops model", version, e)
    try:
        predictor = loads_model(blobs[MODEL_FILE])
    except ModelPackageError as e:
        raise LoadFailure("untrusted", str(e)) from e
    except Exception as e:  # a verified file that still fails to load: a bug or a version skew
        raise LoadFailure("deserialise", f"{where}/{MODEL_FILE} does not load: {e}") from e
    import pandas  # noqa: F401 - the skops model predicts on DataFrames: imported (~1.5 s) at load,
    # not by the first request

    return LoadedModel(version, "sklearn", manifest, features, predictor, drift, contract)


def _onnx_check_passed(manifest: dict[str, Any]) -> bool:
    record = manifest.get("onnx") or {}
    if manifest.get("task") == "regression":
        diff = record.get("max_scaled_value_difference")
    else:
        diff = record.get("max_abs_probability_difference")
    return bool(record.get("used")) and isinstance(diff, float) and diff <= ONNX_TOLERANCE


class ModelState:
    """What the routes see: the loaded model, or why there is none yet."""

    def __init__(self, name: str, version: str | None) -> None:
        self.name = name
        self.version = version or ""
        self.model: LoadedModel | None = None
        self.reason = "loading"

    @property
    def ready(self) -> bool:
        """The one readiness check: a verified, deserialised model is loaded."""
        return self.model is not None

    def load(self, efs_root: Path, metrics: Any, limits: ServingLimits | None = None) -> None:
        """Load once; on failure log the reason, count it and stay not ready (never raise)."""
        started = time.perf_counter()
        try:
            self.model = load_model(efs_root, self.name, self.version or None, limits)
        except LoadFailure as e:
            self.reason = e.reason
            log.error("model %s %s not loaded (%s): %s", self.name, self.version, e.reason, e)
            metrics.load_failed(e.reason)
        except Exception as e:
            self.reason = "other"
            log.exception("model %s %s not loaded: unexpected error", self.name, self.version)
            metrics.load_failed("other")
            del e
        else:
            manifest = self.model.manifest
            metrics.model_loaded(
                float(manifest.get("training_positive_rate", 0.0)),
                self.model.features,
                self.model.drift if self.model.contract.plain else None,
            )
            metrics.task_loaded(self.model.contract, manifest.get("training_target") or {})
            self.reason = "ready"
            log.info(
                "model %s %s ready with %s in %.2f s",
                self.name,
                self.version,
                self.model.runtime,
                time.perf_counter() - started,
            )
