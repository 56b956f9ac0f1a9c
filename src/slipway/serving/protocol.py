"""Open Inference Protocol (v2) REST messages: the documented schema and the fast parser.

The pydantic models describe the protocol in the OpenAPI document (``/openapi.json``); the infer
route does not run them, because pydantic validation of a 30-value tensor costs more than the
prediction. :func:`parse_infer_request` checks the same contract by hand on the orjson-decoded
body and turns it into one float64 ``[N, n_features]`` array.

Two input layouts are accepted:

* one tensor ``input-0`` of shape ``[N, n_features]`` (features in manifest order), ``data`` flat
  (row-major) or nested as N rows;
* one tensor per feature, named by feature name, each of shape ``[N]`` or ``[N, 1]`` (KServe's
  column layout); every feature exactly once, nothing else.

``datatype`` must be ``FP64`` or ``FP32`` (values are used as float64 either way); values must be
JSON numbers, finite (JSON has no NaN/Infinity; ``null`` and strings are refused).
"""

from __future__ import annotations

from itertools import chain
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from slipway.serving.errors import BatchTooLarge, InvalidInput

INPUT_NAME = "input-0"
DATATYPES = ("FP64", "FP32")
MAX_ID_LENGTH = 128
_NUMBER_TYPES = {float, int}


Dimension = Annotated[int, Field(ge=1)]
Numbers = Annotated[list[float], Field(min_length=1)]


class RequestInput(BaseModel):
    """One input tensor of an infer request.

    The schema states what :func:`parse_infer_request` enforces, as far as JSON Schema can: the
    parser also checks that ``shape`` matches the layout (``[N, 30]`` for ``input-0``, ``[N]``
    or ``[N, 1]`` per feature), that ``data`` holds exactly the shape's number of values, and
    that every feature appears once.
    """

    name: str = Field(
        min_length=1, description=f"`{INPUT_NAME}`, or a feature name (column layout)"
    )
    shape: list[Dimension] = Field(
        min_length=1,
        max_length=2,
        description="`[N, 30]` for input-0; `[N]` or `[N, 1]` per feature; N >= 1",
    )
    datatype: Literal["FP64", "FP32"]
    data: Numbers | Annotated[list[Numbers], Field(min_length=1)] = Field(
        description="finite numbers (no null, text or booleans), flat row-major or nested by row",
    )


class InferenceRequest(BaseModel):
    """An Open Inference Protocol infer request."""

    id: str | None = Field(None, max_length=MAX_ID_LENGTH, description="echoed in the response")
    inputs: list[RequestInput] = Field(
        min_length=1, description="one tensor `input-0`, or one tensor per feature"
    )
    outputs: list[dict[str, Any]] | None = Field(None, description="ignored: both are returned")
    parameters: dict[str, Any] | None = None


class ResponseOutput(BaseModel):
    """One output tensor of an infer response."""

    name: Literal["label", "probability"]
    shape: list[int]
    datatype: Literal["INT64", "FP64"]
    data: list[float] | list[int]


class InferenceResponse(BaseModel):
    """An Open Inference Protocol infer response."""

    model_name: str
    model_version: str = Field(description="the package version code")
    id: str
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """Name, datatype and shape of a tensor in the model metadata."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """The model metadata response."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """Every error body: one fixed sentence."""

    error: str


def parse_infer_request(
    body: Any, features: list[str], max_rows: int
) -> tuple[np.ndarray, str | None]:
    """Check an OIP infer request and return ``(rows float64 [N, n_features], request id)``.

    Raises:
        InvalidInput: anything off the contract (messages never quote the request).
        BatchTooLarge: more than ``max_rows`` rows.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > MAX_ID_LENGTH
    ):
        raise InvalidInput(f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    n = len(features)
    if len(inputs) == 1:
        rows = _tensor(inputs[0], INPUT_NAME, 2, n)
    elif len(inputs) == n:
        rows = _columns(inputs, features)
    else:
        raise InvalidInput(
            f"expected one tensor '{INPUT_NAME}' of shape [N, {n}] or one tensor per feature "
            f"({n}); see GET /v2/models/<name> for the names"
        )
    if len(rows) > max_rows:
        raise BatchTooLarge(f"at most {max_rows} rows per request; split the batch")
    return rows, request_id


def _tensor(tensor: Any, name: str, ndim: int, width: int) -> np.ndarray:
    """One tensor as float64 ``[N, width]`` (``ndim`` 2) or ``[N]`` (``ndim`` 1)."""
    if not isinstance(tensor, dict) or tensor.get("name") != name:
        raise InvalidInput(f"expected a tensor object named '{name}' with shape, datatype, data")
    if tensor.get("datatype") not in DATATYPES:
        raise InvalidInput(f"tensor '{name}': datatype must be one of {', '.join(DATATYPES)}")
    shape = tensor.get("shape")
    expected = f"[N, {width}]" if ndim == 2 else "[N] or [N, 1]"
    if (
        not isinstance(shape, list)
        or not all(type(d) is int for d in shape)
        or not (len(shape) == ndim or (ndim == 1 and shape[1:] == [1]))
        or (ndim == 2 and shape[1] != width)
        or not shape
        or shape[0] < 1
    ):
        raise InvalidInput(f"tensor '{name}': shape must be {expected} with N >= 1")
    data = tensor.get("data")
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"tensor '{name}': data must be a non-empty list of numbers")
    if isinstance(data[0], list):
        row_width = width if ndim == 2 else 1
        if not all(isinstance(r, list) and len(r) == row_width for r in data):
            raise InvalidInput(f"tensor '{name}': nested data must be rows of {row_width} numbers")
        flat = list(chain.from_iterable(data))
    else:
        flat = data
    if not set(map(type, flat)) <= _NUMBER_TYPES:
        raise InvalidInput(f"tensor '{name}': data must hold only JSON numbers (no null, text)")
    rows = shape[0]
    if len(flat) != rows * (width if ndim == 2 else 1):
        raise InvalidInput(f"tensor '{name}': data length does not match shape {expected}")
    try:
        array = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"tensor '{name}': numbers must fit a float64") from None
    if not np.isfinite(array).all():
        raise InvalidInput(f"tensor '{name}': numbers must be finite")
    return array.reshape(rows, width) if ndim == 2 else array


def _columns(inputs: list[Any], features: list[str]) -> np.ndarray:
    # names must be strings: a list or object name is unhashable (it was a 500)
    by_name = {
        t["name"]: t for t in inputs if isinstance(t, dict) and isinstance(t.get("name"), str)
    }
    if len(by_name) != len(features) or set(by_name) != set(features):
        raise InvalidInput(
            "with one tensor per feature, every feature must appear exactly once and nothing "
            "else; see GET /v2/models/<name> for the names"
        )
    columns = [_tensor(by_name[f], f, 1, 1) for f in features]
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput("every feature tensor must have the same N")
    return np.ascontiguousarray(np.column_stack(columns))
