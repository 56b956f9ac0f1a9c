"""The binary tensor data extension of the Open Inference Protocol, as KServe and Triton speak it.

An infer body may be a JSON header followed by raw tensor bytes. The request header
``Inference-Header-Content-Length`` gives the JSON part's length; each input whose data is in the
binary part says so with ``parameters.binary_data_size`` (its byte count), the parts following
one another in the order of ``inputs``. Tensors are little-endian, row-major, without padding;
``BOOL`` is one byte per element (0 or 1), ``BYTES`` is each element as a 4-byte little-endian
length and that many bytes. Answers use the same framing when binary outputs are asked for.

Spec: Triton's ``docs/protocol/extension_binary_data.md`` (KServe's "binary tensor data
extension" page says the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from slipway.serving.errors import InvalidInput, UnsupportedMediaType

HEADER_LENGTH = "inference-header-content-length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
# tritonclient sends no Content-Type at all (JSON or binary); KServe's client sends
# application/json, or application/octet-stream with Inference-Header-Content-Length
ACCEPTED_TYPES = ("", JSON_TYPE, BINARY_TYPE)
EXTENSION = "binary_tensor_data"

# fixed-size datatypes: the little-endian numpy dtype of each
FIXED_DTYPES = {
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "BOOL": np.dtype("?"),
}
DATATYPES = (*FIXED_DTYPES, "BYTES")
_LENGTH = np.dtype("<u4")


def check_media_type(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse an infer body that is not JSON, binary tensor data or untyped, or is compressed.

    Args:
        content_type: the request's ``Content-Type`` header (``None`` when absent).
        content_encoding: the request's ``Content-Encoding`` header (``None`` when absent).

    Raises:
        UnsupportedMediaType: any other media type, or a compressed body.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"send the request as Content-Type: {JSON_TYPE}, as {BINARY_TYPE} (binary tensor "
            f"data, with Inference-Header-Content-Length), or with no Content-Type"
        )
    if content_encoding is not None and content_encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            "compressed bodies are not accepted; send Content-Encoding: identity"
        )


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """``(JSON header, binary part)`` of an infer body.

    Args:
        body: the whole request body.
        header_length: the ``Inference-Header-Content-Length`` header, ``None`` when absent (the
            whole body is JSON then).

    Raises:
        InvalidInput: the header is not a byte count within the body.
    """
    if header_length is None:
        return body, memoryview(b"")
    if not (header_length.isascii() and header_length.isdigit()):
        raise InvalidInput("Inference-Header-Content-Length must be a number of bytes")
    n = int(header_length)
    if n > len(body):
        raise InvalidInput("Inference-Header-Content-Length is larger than the request body")
    view = memoryview(body)
    return body[:n], view[n:]


def decode_tensor(datatype: str, count: int, raw: memoryview | bytes, name: str) -> np.ndarray:
    """The flat array of ``count`` elements of ``datatype`` held in ``raw``.

    Args:
        datatype: one of :data:`DATATYPES`.
        count: the element count the tensor's shape gives.
        raw: the tensor's bytes (``binary_data_size`` of them).
        name: the tensor's name as the server knows it, for messages.

    Returns:
        A native-endian array: float64/float32/int64/int32/bool, or object (``bytes``) for BYTES.

    Raises:
        InvalidInput: the byte count does not match the shape, or a BYTES element overruns.
    """
    dtype = FIXED_DTYPES.get(datatype)
    if dtype is not None:
        if len(raw) != count * dtype.itemsize:
            raise InvalidInput(
                f"tensor '{name}': binary_data_size must be {dtype.itemsize} bytes per element "
                f"of the shape ({datatype})"
            )
        array = np.frombuffer(raw, dtype=dtype)
        if datatype == "BOOL" and not np.isin(np.frombuffer(raw, dtype=np.uint8), (0, 1)).all():
            raise InvalidInput(f"tensor '{name}': BOOL elements must be bytes 0 or 1")
        return array.astype(dtype.newbyteorder("="), copy=False)
    return _decode_bytes(raw, count, name)


def _decode_bytes(raw: memoryview | bytes, count: int, name: str) -> np.ndarray:
    items = []
    offset, end = 0, len(raw)
    for _ in range(count):
        if offset + 4 > end:
            raise InvalidInput(f"tensor '{name}': BYTES data ends before the shape's elements")
        size = int(np.frombuffer(raw, dtype=_LENGTH, count=1, offset=offset)[0])
        offset += 4
        if offset + size > end:
            raise InvalidInput(f"tensor '{name}': a BYTES element is longer than the data")
        items.append(bytes(raw[offset : offset + size]))
        offset += size
    if offset != end:
        raise InvalidInput(f"tensor '{name}': BYTES data is longer than the shape's elements")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def encode_tensor(array: np.ndarray, datatype: str) -> bytes:
    """The raw little-endian bytes of ``array`` as ``datatype`` (one of :data:`DATATYPES`)."""
    dtype = FIXED_DTYPES.get(datatype)
    if dtype is not None:
        return np.ascontiguousarray(array, dtype=dtype).tobytes()
    parts = []
    for item in np.asarray(array, dtype=object).ravel():
        data = item if isinstance(item, bytes) else str(item).encode()
        parts += [len(data).to_bytes(4, "little"), data]
    return b"".join(parts)


def join_answer(
    header: dict[str, Any], entries: list[dict[str, Any]], raw: list[bytes]
) -> tuple[bytes, int | None]:
    """The answer's body: ``header`` with its ``outputs`` ``entries`` as JSON, then ``raw``.

    Returns:
        ``(body, JSON length)``: the length is ``None`` when no output is binary (``raw`` is
        empty), else the ``Inference-Header-Content-Length`` to send.
    """
    header["outputs"] = entries
    body = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return body, None
    return b"".join([body, *raw]), len(body)
