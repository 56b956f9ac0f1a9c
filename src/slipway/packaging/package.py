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

import numpy as np

from slipway.errors import ModelPackageError
from slipway.packaging.onnx_model import ONNX_FILE
from slipway.packaging.store import MANIFEST, ModelStore

if TYPE_CHECKING:  # pandas costs ~1.5 s to import; the model server does not need it
    import pandas as pd

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
PSI_BINS = 10


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``, as recorded per file in the manifest."""
    return hashlib.sha256(data).hexdigest()


def training_statistics(features: pd.DataFrame, bins: int = PSI_BINS) -> dict[str, dict[str, Any]]:
    """Per-feature statistics of the training data, for drift checks (PSI) when serving.

    ``edges`` are the inner quantile cut points; ``fractions`` the share of training rows in each
    of the ``len(edges) + 1`` bins they make.
    """
    stats: dict[str, dict[str, Any]] = {}
    for name in features.columns:
        col = features[name].to_numpy(dtype=float)
        edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, col, side="right"), minlength=len(edges) + 1)
        stats[name] = {
            "mean": float(col.mean()),
            "std": float(col.std()),
            "min": float(col.min()),
            "max": float(col.max()),
            "edges": [float(e) for e in edges],
            "fractions": [float(c) for c in counts / counts.sum()],
        }
    return stats


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


def build_package(
    model: Any,
    train_x: pd.DataFrame,
    info: PackageInfo,
    positive_rate: float,
    *,
    onnx: bool = True,
    blob: bytes | None = None,
) -> dict[str, bytes]:
    """Serialise ``model`` with skops and write the manifest that describes and protects it.

    With ``onnx`` (the default) the package also gets ``model.onnx`` when the model converts and
    its probabilities agree with scikit-learn's on ``train_x`` within
    :data:`slipway.packaging.onnx_model.ONNX_TOLERANCE`; the manifest's ``onnx`` entry records the measured
    difference, or why there is no ONNX file. The skops file is always there: it is the reference.

    Args:
        model: the fitted scikit-learn Pipeline.
        train_x: the training rows, feature columns only: the input contract, the drift
            statistics, and the rows on which ONNX must agree with scikit-learn.
        info: what identifies the package.
        positive_rate: share of positive labels in training, for the prediction-drift KPI.
        onnx: ``False`` skips the conversion (the package holds the skops model only).
        blob: the skops bytes of ``model`` as already saved (the pipeline's model artifact).
            skops writes zip timestamps, so dumping again gives other bytes; a retried
            promotion must upload exactly the same file to resume a create-only S3 upload.

    Returns:
        ``{file name: bytes}`` with ``manifest.json`` last, ready for a :class:`ModelStore`.

    Raises:
        ModelPackageError: the model needs a type outside :data:`TRUSTED_TYPES` to load.
    """
    import skops.io as sio

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
        "features": [{"name": c, "dtype": str(train_x[c].dtype)} for c in train_x.columns],
        "classes": [0, 1],
        "positive_class": 1,
        "training_positive_rate": positive_rate,
        "training_stats": training_statistics(train_x),
        "files": {MODEL_FILE: {"sha256": sha256_bytes(blob), "size": len(blob), "format": "skops"}},
        "trusted_types": list(TRUSTED_TYPES),
    }
    files = {MODEL_FILE: blob}
    if onnx:
        onnx_blob, manifest["onnx"] = _onnx_copy(model, train_x)
        if onnx_blob is not None:
            files[ONNX_FILE] = onnx_blob
            manifest["files"][ONNX_FILE] = {
                "sha256": sha256_bytes(onnx_blob),
                "size": len(onnx_blob),
                "format": "onnx",
            }
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return files


def _onnx_copy(model: Any, rows: pd.DataFrame) -> tuple[bytes | None, dict[str, Any]]:
    """The ONNX bytes (or ``None``) and the manifest record of the conversion and its check."""
    from slipway.packaging.onnx_model import (
        ONNX_TOLERANCE,
        convert_to_onnx,
        max_probability_difference,
    )

    record: dict[str, Any] = {"tolerance": ONNX_TOLERANCE, "check_rows": len(rows)}
    try:
        blob = convert_to_onnx(model, rows.shape[1])
        diff = max_probability_difference(blob, model, rows)
    except Exception as e:  # converters and runtimes raise many kinds; the skops model remains
        return None, {**record, "used": False, "reason": f"{type(e).__name__}: {e}"[:500]}
    if not np.isfinite(diff):
        return None, {
            **record,
            "used": False,
            "reason": "predicted labels differ from scikit-learn",
        }
    record["max_abs_probability_difference"] = diff
    if diff > ONNX_TOLERANCE:
        return None, {**record, "used": False, "reason": "probabilities differ beyond tolerance"}
    return blob, {**record, "used": True}


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
