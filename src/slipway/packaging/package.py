"""Model packages: the skops model plus ``manifest.json``, verified before anything is loaded.

The manifest records what the package is (version code, MLflow run, registry version, dataset
version, code version, metrics), the input contract (feature names and dtypes), the training
statistics that drift checks compare against, and the SHA-256 of every file. A reader verifies the
hashes *before* deserialising, and deserialises with an explicit list of trusted types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slipway.errors import ModelPackageError
from slipway.packaging.onnx_model import ONNX_FILE
from slipway.packaging.statistics import plain, target_statistics, training_statistics

# training_statistics is part of this module's surface (tests and the drift code import it here)
__all__ = ["training_statistics"]
from slipway.packaging.store import MANIFEST, ModelStore

if TYPE_CHECKING:  # pandas costs ~1.5 s to import; the model server does not need it
    import pandas as pd

    from slipway.data import DatasetSpec

MODEL_FILE = "model.skops"
MANIFEST_FORMAT = 1
# Types skops does not trust by default that our estimator families need. Anything else found in
# a package is refused: a package must never be able to run code on load.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    # a dtype object (SimpleImputer keeps the fitted column dtype): data, not code
    "numpy.dtype",
    # HistGradientBoosting's fitted trees
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``, as recorded per file in the manifest."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PackageInfo:
    """What identifies a package: everything else lives in its manifest."""

    model_name: str
    version_code: str
    run_id: str
    registry_version: int
    dataset: dict[str, str]
    git_commit: str
    metrics: dict[str, float]


def build_package(  # noqa: PLR0913 - the model, its rows and what the manifest records
    model: Any,
    train_x: pd.DataFrame,
    info: PackageInfo,
    positive_rate: float | None = None,
    *,
    spec: DatasetSpec | None = None,
    train_y: Any = None,
    check_x: pd.DataFrame | None = None,
    onnx: bool = True,
    blob: bytes | None = None,
) -> dict[str, bytes]:
    """Serialise ``model`` with skops and write the manifest that describes and protects it.

    With ``onnx`` (the default) the package also gets ``model.onnx`` when the whole Pipeline
    converts and agrees with scikit-learn on the check rows
    (:mod:`slipway.packaging.onnx_model`); the manifest's ``onnx`` entry records the inputs, the
    measured difference, or why there is no ONNX file. The skops file is always there: it is the
    reference. docs/model-package.md describes every manifest key.

    Args:
        model: the fitted scikit-learn Pipeline.
        train_x: the training rows as the model takes them (:func:`slipway.data.feature_frame`):
            the input contract and the drift statistics.
        info: what identifies the package.
        positive_rate: share of positive labels in training (binary), for the prediction-drift
            KPI; ``None`` computes it from ``train_y``.
        spec: the dataset's spec: feature kinds, task, classes, recorded whole in the manifest.
            ``None`` is a binary 0/1 model on numeric features (packages built before specs).
        train_y: the training labels or values, for the target's statistics.
        check_x: the rows on which ONNX must agree with scikit-learn (promotion passes the
            holdout); default ``train_x``. At most ``ONNX_CHECK_ROWS`` of them (a seeded sample).
        onnx: ``False`` skips the conversion (the package holds the skops model only).
        blob: the skops bytes of ``model`` as already saved (the pipeline's model artifact).
            skops writes zip timestamps, so dumping again gives other bytes; a retried
            promotion must upload exactly the same file to resume a create-only S3 upload.

    Returns:
        ``{file name: bytes}`` with ``manifest.json`` last, ready for a :class:`ModelStore`.

    Raises:
        ModelPackageError: the model needs a type outside :data:`TRUSTED_TYPES` to load, the
            rows are not the spec's features, or a binary model has no positive rate.
    """
    import skops.io as sio

    from slipway.data import spec_to_metadata

    if spec is not None and list(train_x.columns) != spec.feature_names:
        raise ModelPackageError(
            f"training rows have columns {list(train_x.columns)}, the spec of dataset "
            f"{spec.name!r} has features {spec.feature_names}; pass feature_frame(rows, spec)"
        )
    task = spec.task if spec is not None else "binary"
    if positive_rate is None and task == "binary" and train_y is not None:
        positive_rate = target_statistics(train_y, _binary_spec(spec))["positive_rate"]
    if positive_rate is None and task == "binary":
        raise ModelPackageError(
            "a binary model's package needs the training positive rate; pass positive_rate or "
            "train_y"
        )
    blob = sio.dumps(model) if blob is None else blob
    untrusted = sorted(set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelPackageError(
            f"model needs types outside the trusted list to load: {untrusted}; add them to "
            "slipway.packaging.package.TRUSTED_TYPES only after review"
        )
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_name": info.model_name,
        "version_code": info.version_code,
        "mlflow_run_id": info.run_id,
        "registry_version": info.registry_version,
        "dataset": info.dataset,
        "git_commit": info.git_commit,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": info.metrics,
        "task": task,
        "features": _feature_records(train_x, spec),
        **_outputs(model, spec),
        "training_stats": training_statistics(train_x, spec=spec),
        "files": {MODEL_FILE: {"sha256": sha256_bytes(blob), "size": len(blob), "format": "skops"}},
        "trusted_types": list(TRUSTED_TYPES),
    }
    if spec is not None:
        manifest["spec"] = spec_to_metadata(spec)
    if positive_rate is not None and task == "binary":
        manifest["training_positive_rate"] = float(positive_rate)
    if train_y is not None:
        manifest["training_target"] = target_statistics(
            train_y, _binary_spec(spec), manifest.get("classes")
        )
    files = {MODEL_FILE: blob}
    if onnx:
        rows = _check_rows(train_x if check_x is None else check_x)
        scale = manifest.get("training_target", {}).get("std", 1.0) if task == "regression" else 1.0
        kinds = {f.name: f.kind for f in spec.features} if spec is not None else {}
        onnx_blob, manifest["onnx"] = _onnx_copy(model, rows, kinds, scale)
        if onnx_blob is not None:
            files[ONNX_FILE] = onnx_blob
            manifest["files"][ONNX_FILE] = {
                "sha256": sha256_bytes(onnx_blob),
                "size": len(onnx_blob),
                "format": "onnx",
            }
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return files


def _binary_spec(spec: DatasetSpec | None) -> DatasetSpec:
    """``spec``, or for a package without one the binary 0/1 spec it stands for."""
    from slipway.data import DatasetSpec

    if spec is not None:
        return spec
    return DatasetSpec.model_validate(
        {
            "name": "unnamed",
            "task": "binary",
            "target": "label",
            "classes": [0, 1],
            "positive_class": 1,
            "features": [{"name": "x", "kind": "numeric"}],
        }
    )


def _feature_records(train_x: pd.DataFrame, spec: DatasetSpec | None) -> list[dict[str, Any]]:
    """``name`` and ``dtype`` of every column, and its spec ``kind``/``nullable``/``categories``."""
    from slipway.data import category_text

    features = {f.name: f for f in spec.features} if spec is not None else {}
    records = []
    for column in train_x.columns:
        record: dict[str, Any] = {"name": column, "dtype": str(train_x[column].dtype)}
        feature = features.get(column)
        record["kind"] = feature.kind if feature is not None else "numeric"
        if feature is not None:
            record["nullable"] = feature.nullable
            if feature.categories is not None:
                record["categories"] = [category_text(c) for c in feature.categories]
        records.append(record)
    return records


def _outputs(model: Any, spec: DatasetSpec | None) -> dict[str, Any]:
    """``classes``, ``positive_class`` (binary) and ``outputs``: what a prediction returns."""
    if spec is not None and spec.task == "regression":
        return {"outputs": [{"name": "value", "datatype": "FP64", "shape": [-1]}]}
    fitted = getattr(model, "classes_", None)
    if fitted is not None:
        classes = [plain(c) for c in fitted]
    else:
        classes = list(spec.classes or ()) if spec is not None else [0, 1]
    if all(isinstance(c, bool) for c in classes):
        label = "BOOL"
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        label = "INT64"
    else:
        label = "BYTES"
    out: dict[str, Any] = {
        "classes": classes,
        "outputs": [
            {"name": "label", "datatype": label, "shape": [-1]},
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [-1, len(classes)],
                "classes": classes,
            },
        ],
    }
    if spec is None or spec.task == "binary":
        out["positive_class"] = plain(spec.positive_class) if spec is not None else 1
    return out


def _check_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """At most ``ONNX_CHECK_ROWS`` rows, a seeded sample in their original order."""
    from slipway.packaging.onnx_model import ONNX_CHECK_ROWS

    if len(rows) <= ONNX_CHECK_ROWS:
        return rows
    return rows.sample(ONNX_CHECK_ROWS, random_state=0).sort_index()


def _onnx_copy(
    model: Any, rows: pd.DataFrame, kinds: dict[str, str], value_scale: float
) -> tuple[bytes | None, dict[str, Any]]:
    """The ONNX bytes (or ``None``) and the manifest record of the conversion and its checks.

    Each layout of :func:`~slipway.packaging.onnx_model.input_layouts` is tried in turn; the
    first that converts, opens and agrees is kept. ``attempts`` lists the ones that did not;
    ``reason`` is the last (most permissive) layout's.
    """
    from slipway.packaging import onnx_model

    tolerance = onnx_model.ONNX_TOLERANCE  # read now: tests lower it
    record: dict[str, Any] = {"tolerance": tolerance, "check_rows": len(rows)}
    attempts: list[dict[str, Any]] = []
    for layout in onnx_model.input_layouts(list(rows.columns), kinds):
        name = f"{'tensor' if layout[0].name == onnx_model.ONNX_INPUT else 'columns'} " + (
            "FP32" if any(i.datatype == "FP32" for i in layout) else "FP64"
        )
        try:
            blob = onnx_model.convert_to_onnx(model, layout)
            found = onnx_model.compare_with_sklearn(blob, layout, model, rows, value_scale)
        except Exception as e:  # converters and runtimes raise many kinds; the skops model remains
            attempts.append({"layout": name, "reason": f"{type(e).__name__}: {e}"[:500]})
            continue
        reason = _disagreement(found, tolerance)
        if reason is None:
            inputs = [i.to_dict() for i in layout]
            return blob, {
                **record,
                **found,
                "used": True,
                "layout": name,
                "inputs": inputs,
                "attempts": attempts,
            }
        attempts.append({"layout": name, "reason": reason, **found})
    return None, {**record, "used": False, "reason": attempts[-1]["reason"], "attempts": attempts}


def _disagreement(found: dict[str, Any], tolerance: float) -> str | None:
    """Why the ONNX copy may not be used, or ``None`` when it agrees with scikit-learn."""
    if "max_scaled_value_difference" in found:
        if not found["max_scaled_value_difference"] <= tolerance:
            return "values differ beyond tolerance (scaled by the training target's std)"
        return None
    if not found["labels_equal"]:
        found["max_abs_probability_difference"] = None  # JSON has no inf
        return "predicted labels differ from scikit-learn"
    if not found["max_abs_probability_difference"] <= tolerance:
        return "probabilities differ beyond tolerance"
    return None


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Parse the bytes of a ``manifest.json`` and check its format version.

    Args:
        data: the manifest file's content.
        where: the package location, used only to name it in error messages.

    Raises:
        ModelPackageError: the bytes are not JSON, or not a format-``MANIFEST_FORMAT`` manifest.
    """
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise ModelPackageError(f"{where}/{MANIFEST} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelPackageError(f"{where}/{MANIFEST} is not a format-{MANIFEST_FORMAT} manifest")
    return manifest


def verify_file(manifest: dict[str, Any], name: str, data: bytes, where: str) -> None:
    """Check ``data`` against the size and SHA-256 the manifest records for ``name``.

    Raises:
        ModelPackageError: missing entry, truncated or tampered content.
    """
    entry = manifest.get("files", {}).get(name)
    if entry is None:
        raise ModelPackageError(f"{where}/{MANIFEST} lists no file {name}")
    if len(data) != entry["size"]:
        raise ModelPackageError(
            f"{where}/{name} is {len(data)} bytes, the manifest says {entry['size']}: truncated "
            "or replaced; restore the package from the model store"
        )
    digest = sha256_bytes(data)
    if digest != entry["sha256"]:
        raise ModelPackageError(
            f"{where}/{name} has SHA-256 {digest}, the manifest says {entry['sha256']}: the file "
            "was modified; restore the package from the model store"
        )


def loads_model(blob: bytes) -> Any:
    """Deserialise a verified skops blob, trusting only :data:`TRUSTED_TYPES` beyond skops' own."""
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ModelPackageError(
            f"model file asks for untrusted types {untrusted}; refusing to load"
        )
    return sio.loads(blob, trusted=list(TRUSTED_TYPES))


def load_package(store: ModelStore, model: str, version: str) -> tuple[Any, dict[str, Any]]:
    """Read, verify, then deserialise a package from ``store``.

    Returns:
        ``(model, manifest)``.

    Raises:
        ModelPackageError: the package is missing, incomplete or fails its checksum.
    """
    where = store.package_uri(model, version)
    manifest = parse_manifest(store.read(model, version, MANIFEST), where)
    blob = store.read(model, version, MODEL_FILE)
    verify_file(manifest, MODEL_FILE, blob, where)
    return loads_model(blob), manifest
