"""Open Inference Protocol (v2) REST messages as pydantic models: the schema of ``/openapi.json``.

The infer route does not run these models (pydantic validation of a 30-value tensor costs more
than the prediction); :mod:`slipway.serving.protocol` checks the same contract by hand. They state
what that parser enforces as far as JSON Schema can: a body the parser accepts validates here
(``tests/unit/serving/test_protocol_properties.py``), and schemathesis checks that the server
refuses what the schema refuses (``tests/unit/serving/test_openapi_schemathesis.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

INPUT_NAME = "input-0"
MAX_ID_LENGTH = 128
# the outputs of every served model and their datatypes, in the order they are returned
OUTPUT_DATATYPES = {"label": "INT64", "probability": "FP64"}

Dimension = Annotated[int, Field(ge=1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


def _values(item: Any) -> Any:
    """``data``: a non-empty flat list of ``item`` or a non-empty list of non-empty rows."""
    flat = Annotated[list[item], Field(min_length=1)]
    return Annotated[
        flat | Annotated[list[flat], Field(min_length=1)],
        Field(description="flat row-major, or nested by row (rows of the shape's last dimension)"),
    ]


# null: a missing value, accepted for nullable features only (see GET /v2/models/<name>)
FloatData = _values(float | None)
Int64Data = _values(Int64 | None)
Int32Data = _values(Int32 | None)
BoolData = _values(StrictBool | None)
BytesData = _values(StrictStr | None)


class InputParameters(BaseModel):
    """``parameters`` of an input tensor; names other than these are ignored."""

    model_config = ConfigDict(extra="allow")

    binary_data_size: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="bytes of this tensor in the binary part (binary tensor data extension; "
        "with Content-Type application/octet-stream and Inference-Header-Content-Length)",
    )


class _Input(BaseModel):
    name: str = Field(
        min_length=1, description=f"`{INPUT_NAME}`, or a feature name (column layout)"
    )
    shape: list[Dimension] = Field(
        min_length=1,
        max_length=2,
        description="`[N, n_features]` for input-0; `[N]` or `[N, 1]` per feature; N >= 1",
    )
    parameters: InputParameters | None = None


class FloatInput(_Input):
    """An input tensor of ``FP64`` or ``FP32`` values (used as float64)."""

    datatype: Literal["FP64", "FP32"]
    data: FloatData


class Int64Input(_Input):
    """An input tensor of ``INT64`` values (JSON integers; used as float64)."""

    datatype: Literal["INT64"]
    data: Int64Data


class Int32Input(_Input):
    """An input tensor of ``INT32`` values (JSON integers; used as float64)."""

    datatype: Literal["INT32"]
    data: Int32Data


class BoolInput(_Input):
    """An input tensor of ``BOOL`` values (a boolean feature; used as 0/1)."""

    datatype: Literal["BOOL"]
    data: BoolData


class BytesInput(_Input):
    """An input tensor of ``BYTES`` values: JSON strings (a categorical feature)."""

    datatype: Literal["BYTES"]
    data: BytesData


RequestInput = Annotated[
    FloatInput | Int64Input | Int32Input | BoolInput | BytesInput, Field(discriminator="datatype")
]
#: The schema components of the input tensors (their ``name`` gets the served names).
INPUT_COMPONENTS = ("FloatInput", "Int64Input", "Int32Input", "BoolInput", "BytesInput")
#: Every output name a served model may have (per task: docs/serving.md).
OUTPUT_NAMES = Literal["label", "probability", "value"]


class OutputParameters(BaseModel):
    """``parameters`` of a requested output; names other than these are ignored."""

    model_config = ConfigDict(extra="allow")

    binary_data: bool | None = Field(
        None, description="return this output as binary tensor data (overrides the request's)"
    )


class RequestOutput(BaseModel):
    """An output the caller asks for; only the requested outputs are returned."""

    name: OUTPUT_NAMES
    parameters: OutputParameters | None = None


class RequestParameters(BaseModel):
    """``parameters`` of an infer request; names other than these are ignored."""

    model_config = ConfigDict(extra="allow")

    binary_data_output: bool | None = Field(
        None, description="return every output as binary tensor data unless an output says not"
    )


class InferenceRequest(BaseModel):
    """An Open Inference Protocol infer request (its JSON part, with binary tensor data)."""

    id: str | None = Field(None, max_length=MAX_ID_LENGTH, description="echoed in the response")
    inputs: list[RequestInput] = Field(
        min_length=1, description="one tensor `input-0`, or one tensor per feature"
    )
    outputs: list[RequestOutput] | None = Field(
        None, min_length=1, description="the outputs to return, each once (default: all)"
    )
    parameters: RequestParameters | None = None


class ResponseParameters(BaseModel):
    """``parameters`` of a response output."""

    binary_data_size: int = Field(description="bytes of this output in the binary part")


class ResponseOutput(BaseModel):
    """One output tensor of an infer response: ``data``, or ``parameters.binary_data_size``."""

    name: OUTPUT_NAMES
    shape: list[int]
    datatype: Literal["INT64", "FP64", "BYTES", "BOOL"]
    data: list[float] | list[int] | list[str] | list[bool] | None = None
    parameters: ResponseParameters | None = None


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


class ServerMetadata(BaseModel):
    """The server metadata response."""

    name: str
    version: str
    extensions: list[str] = Field(description="the protocol extensions this server implements")


class ErrorBody(BaseModel):
    """Every error body: one fixed sentence."""

    error: str
