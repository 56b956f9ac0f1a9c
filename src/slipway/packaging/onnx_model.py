"""ONNX copies of packaged models: converted at promotion, checked against scikit-learn, served.

scikit-learn pays ~0.7 ms of input validation per ``predict_proba`` call, ONNX Runtime ~20 µs for
the same logistic regression. A converted model is only used when its probabilities agree with
scikit-learn's on real rows within :data:`ONNX_TOLERANCE`; otherwise the package has no ONNX file
and the server uses the skops model. Inputs are float64 end to end (``DoubleTensorType``), so a
linear model agrees to ~1e-16. Tree ensembles come out of skl2onnx with float32 thresholds, which
flips splits near a threshold (measured: 0.01 on the breast-cancer data), so they are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from slipway.errors import ModelPackageError

ONNX_FILE = "model.onnx"
ONNX_INPUT = "input"
ONNX_OUTPUTS = ("label", "probabilities")
# Largest accepted |p_onnx - p_sklearn| on the positive-class probability, on the check rows.
ONNX_TOLERANCE = 1e-5
ONNX_TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def convert_to_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted classifier (or Pipeline) to ONNX with a float64 ``[N, n_features]`` input.

    Raises:
        ModelPackageError: skl2onnx cannot convert the model.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        # skl2onnx does not know the "passthrough" placeholder; it is the identity, so drop it
        model = Pipeline([s for s in model.steps if s[1] not in ("passthrough", None)])
        final = model.steps[-1][1]
    else:
        final = model
    try:
        onx = to_onnx(
            model,
            initial_types=[(ONNX_INPUT, DoubleTensorType([None, n_features]))],
            options={id(final): {"zipmap": False}},
            target_opset=ONNX_TARGET_OPSET,
        )
    except Exception as e:  # skl2onnx raises many kinds for unsupported models
        raise ModelPackageError(
            f"skl2onnx cannot convert {type(final).__name__}: {type(e).__name__}: {e}"
        ) from e
    return onx.SerializeToString()


def open_session(blob: bytes) -> Any:
    """An ONNX Runtime session on one thread (the server scales with worker processes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    outputs = tuple(o.name for o in session.get_outputs())
    if [i.name for i in session.get_inputs()] != [ONNX_INPUT] or outputs != ONNX_OUTPUTS:
        raise ModelPackageError(
            f"ONNX model has inputs/outputs {outputs}, expected {ONNX_INPUT} -> {ONNX_OUTPUTS}"
        )
    return session


def predict_onnx(session: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels int64 [N], positive-class probabilities float64 [N])``."""
    labels, proba = session.run(None, {ONNX_INPUT: rows})
    return labels.astype(np.int64, copy=False), np.ascontiguousarray(proba[:, 1], dtype=np.float64)


def max_probability_difference(blob: bytes, model: Any, rows: Any) -> float:
    """Largest |ONNX - scikit-learn| positive-class probability over ``rows`` (a DataFrame).

    Returns ``inf`` when a predicted label differs.
    """
    labels, proba = predict_onnx(open_session(blob), rows.to_numpy(dtype=np.float64))
    reference = model.predict_proba(rows)[:, 1]
    if not np.array_equal(labels, np.asarray(model.predict(rows), dtype=np.int64)):
        return float("inf")
    return float(np.max(np.abs(proba - reference))) if len(proba) else 0.0
