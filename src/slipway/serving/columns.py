"""Infer requests of models that are not plain: tensors to typed columns, outputs to the answer.

:func:`read_columns` turns the decoded tensors (:class:`~slipway.serving.tensors.Tensor`) into
the model's columns, each in its kind's type, exactly as :func:`slipway.data.feature_frame`
gives them to the model at training: numbers and booleans as float64 (NaN when missing),
categoricals as text (``""`` when missing). The datatype each kind takes is listed in
:mod:`slipway.serving.contract`; a tensor of another datatype is a 400 naming the feature, the
datatypes it takes and the one received. A category the training data never had is answered
(the one-hot encoder ignores it: all its columns 0) and counted per feature.

:func:`encode_outputs` writes the answer of any task: 2-D outputs (multiclass probabilities)
with their ``[N, k]`` shape and flat row-major data, ``BYTES`` labels as JSON strings or
length-prefixed binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.serving.binary import encode_tensor, join_answer
from slipway.serving.contract import NUMBER_KINDS, Contract, FeatureInput
from slipway.serving.errors import InvalidInput
from slipway.serving.schema import INPUT_NAME
from slipway.serving.tensors import Tensor

NUMERIC_DATATYPES = ("FP64", "FP32", "INT64", "INT32")
#: The datatypes each feature kind takes.
ACCEPTED = {
    "numeric": NUMERIC_DATATYPES,
    "integer": NUMERIC_DATATYPES,
    "boolean": ("BOOL", *NUMERIC_DATATYPES),
    "categorical": ("BYTES",),
}
MISSING_CATEGORY = ""  # as slipway.data.MISSING_CATEGORY (not imported: it pulls in pandas)


@dataclass(slots=True)
class ColumnBatch:
    """The model's columns of one request.

    Attributes:
        columns: per feature (manifest order), float64 ``[N]`` or an object array of ``str``.
        rows: N.
        unknown: per categorical feature, how many values were none of its categories.
    """

    columns: dict[str, np.ndarray]
    rows: int
    unknown: dict[str, int]


def read_columns(tensors: list[Tensor], contract: Contract) -> ColumnBatch:
    """The columns ``tensors`` hold for a model with ``contract``.

    Args:
        tensors: the request's inputs, decoded with their own datatypes.
        contract: the served model's contract (not plain).

    Raises:
        InvalidInput: a layout, shape, datatype or value off the contract.
    """
    features = contract.features
    n = len(features)
    if len(tensors) == 1 and tensors[0].name == INPUT_NAME:
        return _from_matrix(tensors[0], contract)
    by_name = {t.name: t for t in tensors}
    if len(tensors) != n or len(by_name) != n or INPUT_NAME in by_name:
        raise InvalidInput(
            f"expected one tensor per feature ({n}), every feature exactly once; see "
            "GET /v2/models/<name> for their names and datatypes"
        )
    columns: dict[str, np.ndarray] = {}
    unknown: dict[str, int] = {}
    for feature in features:
        tensor = by_name[feature.name]
        if len(tensor.shape) == 2 and tensor.shape[1] != 1:
            raise InvalidInput(f"tensor '{feature.name}': shape must be [N] or [N, 1] with N >= 1")
        columns[feature.name] = _column(feature, tensor.datatype, tensor.values, unknown)
    if len({len(c) for c in columns.values()}) != 1:
        raise InvalidInput("every feature tensor must have the same N")
    return ColumnBatch(columns, len(next(iter(columns.values()))), unknown)


def _from_matrix(tensor: Tensor, contract: Contract) -> ColumnBatch:
    n = len(contract.features)
    if not contract.takes_matrix:
        raise InvalidInput(
            f"this model has categorical features: send one tensor per feature, not "
            f"'{INPUT_NAME}'; see GET /v2/models/<name> for their names and datatypes"
        )
    if len(tensor.shape) != 2 or tensor.shape[1] != n:
        raise InvalidInput(f"tensor '{INPUT_NAME}': shape must be [N, {n}] with N >= 1")
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(
            f"tensor '{INPUT_NAME}' takes datatype {', '.join(NUMERIC_DATATYPES)}; "
            f"received {tensor.datatype}"
        )
    matrix = tensor.values.astype(np.float64, copy=False).reshape(tensor.shape)
    columns = {
        f.name: _column(f, tensor.datatype, np.ascontiguousarray(matrix[:, i]), {})
        for i, f in enumerate(contract.features)
    }
    return ColumnBatch(columns, tensor.shape[0], {})


def _column(
    feature: FeatureInput, datatype: str, values: np.ndarray, unknown: dict[str, int]
) -> np.ndarray:
    """One feature's values in its kind's type (float64, or text for a categorical)."""
    name = feature.name
    accepted = ACCEPTED[feature.kind]
    if datatype not in accepted:
        raise InvalidInput(
            f"tensor '{name}': feature '{name}' is {feature.kind} and takes datatype "
            f"{' or '.join(accepted)}; received {datatype}"
        )
    if feature.kind == "categorical":
        return _text(feature, values, unknown)
    numbers = values.astype(np.float64, copy=False)
    missing = np.isnan(numbers)
    if np.isinf(numbers).any():
        raise InvalidInput(f"tensor '{name}': numbers must be finite")
    if missing.any() and not feature.nullable:
        raise InvalidInput(
            f"tensor '{name}': feature '{name}' is not nullable; every value must be present"
        )
    if feature.kind not in NUMBER_KINDS and not np.isin(numbers[~missing], (0.0, 1.0)).all():
        raise InvalidInput(
            f"tensor '{name}': boolean feature '{name}' takes BOOL values or the numbers 0 and 1"
        )
    return numbers


def _text(feature: FeatureInput, values: np.ndarray, unknown: dict[str, int]) -> np.ndarray:
    name = feature.name
    out = np.empty(len(values), dtype=object)
    known = feature.categories
    strange = 0
    for i, value in enumerate(values.tolist()):
        if value is None:  # JSON null: only a nullable feature's tensor can hold one
            out[i] = MISSING_CATEGORY
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"tensor '{name}': BYTES values must be UTF-8 text") from None
        if text == MISSING_CATEGORY and not feature.nullable:
            raise InvalidInput(
                f"tensor '{name}': feature '{name}' is not nullable; every value must be present"
            )
        if text != MISSING_CATEGORY and text not in known:
            strange += 1
        out[i] = text
    if strange:
        unknown[name] = strange
    return out


def encode_outputs(
    header: dict[str, Any],
    values: dict[str, np.ndarray],
    outputs: tuple[Any, ...],
    datatypes: dict[str, str],
) -> tuple[bytes, int | None]:
    """The infer answer of any task: JSON, or a JSON header followed by the binary outputs.

    Args:
        header: ``model_name``, ``model_version`` and ``id``; ``outputs`` is added to it.
        values: each output's array (``[N]``, or ``[N, k]`` for multiclass probabilities;
            labels of a ``BYTES`` output as ``str``).
        outputs: the :class:`~slipway.serving.protocol.RequestedOutput` to return, in order.
        datatypes: each output's datatype (:attr:`Contract.outputs`).

    Returns:
        ``(body, JSON length)`` as :func:`slipway.serving.protocol.encode_infer_response`.
    """
    entries = []
    raw = []
    for output in outputs:
        data = values[output.name]
        datatype = datatypes[output.name]
        entry: dict[str, Any] = {
            "name": output.name,
            "shape": list(data.shape),
            "datatype": datatype,
        }
        flat = np.ascontiguousarray(data).reshape(-1)  # orjson takes C-contiguous arrays only
        if output.binary:
            blob = encode_tensor(flat, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            raw.append(blob)
        elif datatype == "BYTES":
            entry["data"] = [str(v) for v in flat.tolist()]
        else:
            entry["data"] = flat
        entries.append(entry)
    return join_answer(header, entries, raw)


def answer_columns(
    model: Any, asked: Any, metrics: Any, header: dict[str, Any]
) -> tuple[bytes, int | None, bool]:
    """Predict, record and encode the answer of a request read as columns.

    Args:
        model: the :class:`~slipway.serving.model.LoadedModel`.
        asked: the :class:`~slipway.serving.protocol.InferInputs` (with ``columns``).
        metrics: the server's :class:`~slipway.serving.metrics.ServerMetrics`.
        header: ``model_name``, ``model_version`` and ``id`` of the answer.

    Returns:
        ``(body, JSON length or None, whether PSI is due)``.
    """
    batch: ColumnBatch = asked.columns
    values = model.predict_columns(batch.columns)
    metrics.observe_outputs(model.contract, values)
    if batch.unknown:
        metrics.count_unknown(batch.unknown)
    due = model.drift.add(model.drift.encode(batch.columns))
    body, length = encode_outputs(header, values, asked.outputs, model.contract.outputs)
    return body, length, due
