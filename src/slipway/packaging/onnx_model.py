"""ONNX copies of packaged models: converted at promotion, checked against scikit-learn, served.

scikit-learn pays ~0.7 ms of input validation per ``predict_proba`` call, ONNX Runtime ~20 µs for
the same logistic regression. The whole Pipeline is converted (skl2onnx), the spec's
ColumnTransformer included, and the copy is only kept when it agrees with scikit-learn on real
rows: the same labels, and probabilities (classification) or values scaled by the training
target's standard deviation (regression) within :data:`ONNX_TOLERANCE`. Otherwise the package has
no ONNX file, its manifest says why, and the server uses the skops model.

Input layouts are tried in this order (:func:`input_layouts`), the first that converts, opens
and agrees is kept:

1. all features numeric, integer or boolean: one float64 tensor ``input`` ``[N, n_features]``
   (a linear model agrees to ~1e-16; the layout servers have read since the first package);
2. one input per feature column, ``[N, 1]``: ``BYTES`` (string) for categoricals, float64 for
   the others;
3. the same with float32 for the numbers: ONNX Runtime has no float64 ``Imputer`` (a nullable
   numeric or boolean column) and no float64 tree ensembles, so those graphs run in float32.

Tree ensembles come out of skl2onnx with float32 thresholds, which flips splits near a
threshold (measured: 0.01 on the breast-cancer data, 0.06 on penguins), so most are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.errors import ModelPackageError

ONNX_FILE = "model.onnx"
ONNX_INPUT = "input"
ONNX_OUTPUTS = ("label", "probabilities")
#: A regressor's one output, ``[N, 1]`` (skl2onnx calls it ``variable``; renamed at conversion).
ONNX_REGRESSION_OUTPUTS = ("value",)
# Largest accepted |p_onnx - p_sklearn| over every class probability on the check rows; for a
# regressor, the largest |v_onnx - v_sklearn| / std(training target).
ONNX_TOLERANCE = 1e-5
#: At most this many holdout rows are checked at promotion (a seeded sample of larger holdouts).
ONNX_CHECK_ROWS = 1000
ONNX_TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
#: OIP datatype of an ONNX input by element type.
DATATYPES = {"double": "FP64", "float": "FP32", "string": "BYTES"}


@dataclass(frozen=True)
class OnnxInput:
    """One input of an ONNX model: its name, element datatype and the feature columns it holds."""

    name: str
    datatype: str  # "FP64", "FP32" or "BYTES"
    features: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The manifest record: ``name``, ``datatype``, ``shape`` (``-1`` = any rows), ``features``."""
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": [-1, len(self.features)],
            "features": list(self.features),
        }


def input_layouts(columns: Sequence[str], kinds: Mapping[str, str]) -> list[list[OnnxInput]]:
    """The input layouts to try for a model on ``columns``, in order (the module docstring).

    Args:
        columns: the model's feature columns, in order.
        kinds: the spec kind of each column (a column not listed is numeric).
    """
    text = {c for c in columns if kinds.get(c, "numeric") == "categorical"}

    def per_column(number: str) -> list[OnnxInput]:
        return [OnnxInput(c, "BYTES" if c in text else number, (c,)) for c in columns]

    layouts = [] if text else [[OnnxInput(ONNX_INPUT, "FP64", tuple(columns))]]
    return [*layouts, per_column("FP64"), per_column("FP32")]


def convert_to_onnx(model: Any, inputs: Sequence[OnnxInput]) -> bytes:
    """Convert a fitted classifier or regressor (or Pipeline of one) with the given inputs.

    A classifier's outputs are ``label`` ``[N]`` and ``probabilities`` ``[N, n_classes]`` (the
    model's ``classes_`` order); a regressor's is ``value`` ``[N, 1]``.

    Raises:
        ModelPackageError: skl2onnx cannot convert the model.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.base import is_regressor
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        # skl2onnx does not know the "passthrough" placeholder; it is the identity, so drop it
        model = Pipeline([s for s in model.steps if s[1] not in ("passthrough", None)])
        final = model.steps[-1][1]
    else:
        final = model
    tensor = {"FP64": DoubleTensorType, "FP32": FloatTensorType, "BYTES": StringTensorType}
    initial = [(i.name, tensor[i.datatype]([None, len(i.features)])) for i in inputs]
    regression = is_regressor(final)
    try:
        onx = to_onnx(
            model,
            initial_types=initial,
            options=None if regression else {id(final): {"zipmap": False}},
            target_opset=ONNX_TARGET_OPSET,
        )
    except Exception as e:  # skl2onnx raises many kinds for unsupported models
        raise ModelPackageError(
            f"skl2onnx cannot convert {type(final).__name__}: {type(e).__name__}: {e}"
        ) from e
    if regression:
        _rename_output(onx, onx.graph.output[0].name, ONNX_REGRESSION_OUTPUTS[0])
    return onx.SerializeToString()


def open_session(blob: bytes, inputs: Sequence[Mapping[str, Any]] | None = None) -> Any:
    """An ONNX Runtime session on one thread (the server scales with worker processes).

    Args:
        blob: the ONNX model.
        inputs: the manifest's ``onnx.inputs`` records the model must take; ``None`` expects
            the original layout only (one float64 tensor ``input``, outputs ``label`` and
            ``probabilities``), so a reader that knows only that layout refuses the others.

    Raises:
        ModelPackageError: the model's inputs or outputs are not the expected ones.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    outputs = tuple(o.name for o in session.get_outputs())
    found = [(i.name, i.type) for i in session.get_inputs()]
    if inputs is None:
        expected, allowed = [(ONNX_INPUT, "tensor(double)")], (ONNX_OUTPUTS,)
    else:
        types = {v: k for k, v in DATATYPES.items()}
        expected = [(i["name"], f"tensor({types[i['datatype']]})") for i in inputs]
        allowed = (ONNX_OUTPUTS, ONNX_REGRESSION_OUTPUTS)
    if found != expected or outputs not in allowed:
        raise ModelPackageError(
            f"ONNX model has inputs {found} and outputs {outputs}, expected inputs {expected} "
            f"and outputs {' or '.join(map(str, allowed))}"
        )
    return session


def onnx_feed(frame: Any, inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The ONNX Runtime feed of ``frame`` (a :func:`slipway.data.feature_frame` result).

    Args:
        frame: the rows, one column per feature (categoricals as text, ``""`` when missing).
        inputs: the manifest's ``onnx.inputs`` records.
    """
    dtypes = {"FP64": np.float64, "FP32": np.float32, "BYTES": np.str_}
    return {
        i["name"]: frame[list(i["features"])].to_numpy().astype(dtypes[i["datatype"]])
        for i in inputs
    }


def run_onnx(session: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{output name: array}``: ``label`` and ``probabilities``, or ``value`` ``[N, 1]``."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, dict(feed)), strict=True))


def predict_onnx(session: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels int64 [N], positive-class probabilities float64 [N])`` .

    For a binary model on the original layout (one float64 tensor ``input``).
    """
    labels, proba = session.run(None, {ONNX_INPUT: rows})
    return labels.astype(np.int64, copy=False), np.ascontiguousarray(proba[:, 1], dtype=np.float64)


def compare_with_sklearn(
    blob: bytes, inputs: Sequence[OnnxInput], model: Any, rows: Any, value_scale: float = 1.0
) -> dict[str, Any]:
    """How far the ONNX copy is from scikit-learn on ``rows`` (a DataFrame of the features).

    Args:
        blob: the converted model.
        inputs: its inputs.
        model: the fitted scikit-learn model.
        rows: the check rows.
        value_scale: a regressor's difference is divided by this (the training target's std).

    Returns:
        Classification: ``labels_equal`` and ``max_abs_probability_difference`` over every
        class. Regression: ``max_abs_value_difference`` and ``max_scaled_value_difference``.
        A mismatch in the number of outputs counts as unequal labels (difference ``inf``).
    """
    records = [i.to_dict() for i in inputs]
    out = run_onnx(open_session(blob, records), onnx_feed(rows, records))
    if "value" in out:
        diff = np.abs(out["value"].reshape(-1).astype(np.float64) - model.predict(rows))
        biggest = float(diff.max()) if len(diff) else 0.0
        scale = value_scale if value_scale > 0 else 1.0
        return {"max_abs_value_difference": biggest, "max_scaled_value_difference": biggest / scale}
    reference = model.predict_proba(rows)
    labels = np.asarray(out["label"]).astype(str)
    equal = bool(np.array_equal(labels, np.asarray(model.predict(rows)).astype(str)))
    proba = np.asarray(out["probabilities"], dtype=np.float64)
    diff = float(np.max(np.abs(proba - reference))) if proba.shape == reference.shape else np.inf
    return {
        "labels_equal": equal and bool(np.isfinite(diff)),
        "max_abs_probability_difference": diff if len(proba) else 0.0,
    }


def _rename_output(onx: Any, old: str, new: str) -> None:
    for node in onx.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    for output in onx.graph.output:
        if output.name == old:
            output.name = new
