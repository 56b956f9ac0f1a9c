"""One input tensor of an infer request, decoded with its own datatype.

:func:`read_tensor` checks a tensor's name, datatype and shape and decodes its values, from JSON
``data`` or from the binary part of the body (:class:`BinaryPart`), into a :class:`Tensor` that
keeps the datatype the caller sent; :mod:`slipway.serving.protocol` then turns tensors into the
model's columns. Messages quote a tensor's name only once it is known to be one the server has.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from slipway.serving.binary import DATATYPES, decode_tensor
from slipway.serving.errors import InvalidInput
from slipway.serving.schema import INPUT_NAME

# parameters of the classification and shared-memory extensions, which are not implemented
UNSUPPORTED_PARAMETERS = frozenset(
    {"classification", "shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"}
)
_INT32 = np.iinfo(np.int32)
_NONE: frozenset[str] = frozenset()
_JSON_TYPES = {
    "FP64": {float, int},
    "FP32": {float, int},
    "INT64": {int},
    "INT32": {int},
    "BOOL": {bool},
    "BYTES": {str},
}
_JSON_KINDS = {
    "FP64": "numbers (no null, text, booleans)",
    "FP32": "numbers (no null, text, booleans)",
    "INT64": "integers",
    "INT32": "integers",
    "BOOL": "booleans",
    "BYTES": "strings",
}


@dataclass(slots=True)
class Tensor:
    """One decoded input tensor, still in the datatype the caller sent.

    Attributes:
        name: ``input-0`` or a feature name (only names the server knows get this far).
        datatype: one of :data:`slipway.serving.binary.DATATYPES`.
        shape: the tensor's shape, 1 or 2 dimensions, each >= 1.
        values: the flat row-major values (float64, float32, int64, int32, bool or bytes).
    """

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray


class BinaryPart:
    """The binary part of a body, handed out in ``binary_data_size`` slices in input order."""

    __slots__ = ("data", "offset")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> memoryview:
        """The next ``size`` bytes (:class:`InvalidInput` if fewer are left)."""
        end = self.offset + size
        if end > len(self.data):
            raise InvalidInput("the inputs' binary_data_size add up to more than the binary data")
        part = self.data[self.offset : end]
        self.offset = end
        return part

    def check_consumed(self) -> None:
        """Refuse bytes that no input's ``binary_data_size`` claimed."""
        if self.offset != len(self.data):
            raise InvalidInput(
                "the binary data after the JSON is longer than the inputs' binary_data_size"
            )


def check_parameters(value: Any, where: str) -> dict[str, Any]:
    """``parameters`` of ``where`` as a dict, refusing those of unimplemented extensions.

    Raises:
        InvalidInput: not an object, or holds one of :data:`UNSUPPORTED_PARAMETERS`.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'parameters' of {where} must be an object")
    unsupported = UNSUPPORTED_PARAMETERS.intersection(value)
    if unsupported:
        raise InvalidInput(
            f"parameters of the classification and shared-memory extensions "
            f"({', '.join(sorted(UNSUPPORTED_PARAMETERS))}) are not supported; see GET /v2 for "
            "the extensions this server has"
        )
    return value


def read_tensor(
    tensor: Any, known: frozenset[str], reader: BinaryPart | None, nullable: frozenset[str] = _NONE
) -> Tensor:
    """One input tensor, decoded with its own datatype (from JSON ``data`` or the binary part).

    Args:
        tensor: one element of the request's ``inputs``.
        known: the tensor names the server has (``input-0`` and the features).
        reader: the body's binary part, ``None`` when it has none.
        nullable: the features whose JSON ``data`` may hold ``null`` (a missing value: NaN in
            a number tensor, ``None`` in a BYTES one; see :func:`_json_nullable_values`).

    Raises:
        InvalidInput: an unknown name, datatype, a bad shape, parameters or values.
    """
    name = tensor.get("name") if type(tensor) is dict else None
    # only a known name is ever quoted back (a list or object name is unhashable: it was a 500)
    if type(name) is not str or name not in known:
        raise InvalidInput(
            f"every input must be an object named '{INPUT_NAME}' or a feature name, with shape, "
            "datatype and data; see GET /v2/models/<name> for the names"
        )
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in _JSON_TYPES:
        raise InvalidInput(f"tensor '{name}': datatype must be one of {', '.join(DATATYPES)}")
    shape = tensor.get("shape")
    if type(shape) is not list or not 0 < len(shape) < 3:
        raise _bad_shape(name)
    count = 1
    for d in shape:
        if type(d) is not int or d < 1:
            raise _bad_shape(name)
        count *= d
    parameters = tensor.get("parameters")
    size = None
    if parameters is not None:
        size = check_parameters(parameters, f"tensor '{name}'").get("binary_data_size")
    if size is None:
        if name in nullable:
            values = _json_nullable_values(tensor.get("data"), name, datatype, shape, count)
        else:
            values = _json_values(tensor.get("data"), name, datatype, shape, count)
    else:
        if type(size) is not int or size < 0:
            raise InvalidInput(f"tensor '{name}': binary_data_size must be a byte count")
        if "data" in tensor:
            raise InvalidInput(f"tensor '{name}': give data or binary_data_size, not both")
        if reader is None:
            raise InvalidInput(
                "binary_data_size needs binary tensor data after the JSON: send the JSON length "
                "as Inference-Header-Content-Length"
            )
        values = decode_tensor(datatype, count, reader.take(size), name)
    return Tensor(name, datatype, shape, values)


def _bad_shape(name: str) -> InvalidInput:
    return InvalidInput(f"tensor '{name}': shape must be 1 or 2 dimensions, each >= 1")


def _flat(data: Any, name: str, shape: list[int]) -> list:
    """A tensor's JSON ``data`` as one flat list: given flat, or nested as rows of the shape."""
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"tensor '{name}': data must be a non-empty list of values")
    if not isinstance(data[0], list):
        return data
    width = shape[1] if len(shape) == 2 else 1
    if not all(isinstance(r, list) and len(r) == width for r in data):
        raise InvalidInput(f"tensor '{name}': nested data must be rows of {width} values")
    return list(chain.from_iterable(data))


def _json_values(data: Any, name: str, datatype: str, shape: list[int], count: int) -> np.ndarray:
    flat = _flat(data, name, shape)
    if not set(map(type, flat)) <= _JSON_TYPES[datatype]:
        raise InvalidInput(
            f"tensor '{name}': {datatype} data must hold only JSON {_JSON_KINDS[datatype]}"
        )
    if len(flat) != count:
        raise InvalidInput(f"tensor '{name}': data length does not match the shape")
    if datatype == "BYTES":
        values = np.empty(count, dtype=object)
        values[:] = [s.encode() for s in flat]
        return values
    dtype = np.float64 if datatype.startswith("FP") else np.int64
    try:
        values = np.array(flat, dtype=dtype if datatype != "BOOL" else np.bool_)
    except OverflowError:
        raise InvalidInput(f"tensor '{name}': values must fit a {datatype}") from None
    if datatype == "INT32" and (values.min() < _INT32.min or values.max() > _INT32.max):
        raise InvalidInput(f"tensor '{name}': values must fit an INT32")
    return values


def _json_nullable_values(
    data: Any, name: str, datatype: str, shape: list[int], count: int
) -> np.ndarray:
    """A nullable feature's JSON values: ``null`` is a missing value.

    Numbers (and ``BOOL``) come back as float64 with NaN for ``null``; ``BYTES`` as an object
    array of ``bytes`` with ``None`` for ``null``. Everything else is checked as
    :func:`_json_values` checks it.
    """
    flat = _flat(data, name, shape)
    if not set(map(type, flat)) <= _JSON_TYPES[datatype] | {type(None)}:
        raise InvalidInput(
            f"tensor '{name}': {datatype} data must hold only JSON {_JSON_KINDS[datatype]} or null"
        )
    if len(flat) != count:
        raise InvalidInput(f"tensor '{name}': data length does not match the shape")
    if datatype == "BYTES":
        values = np.empty(count, dtype=object)
        values[:] = [None if s is None else s.encode() for s in flat]
        return values
    try:
        values = np.array([np.nan if v is None else float(v) for v in flat], dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"tensor '{name}': values must fit a {datatype}") from None
    limit = _INT32 if datatype == "INT32" else np.iinfo(np.int64) if datatype == "INT64" else None
    present = values[~np.isnan(values)]
    if (
        limit is not None
        and len(present)
        and (present.min() < limit.min or present.max() > limit.max)
    ):
        raise InvalidInput(f"tensor '{name}': values must fit a {datatype}")
    return values
