"""The two HTTP floors that ``bench.serving`` measures slipway against, as bare ASGI apps.

Both run under the server's stack (uvicorn, one worker, uvloop, httptools, access log off) and
are driven by the same wrk script as slipway, so the ratio slipway / floor isolates what slipway
adds on top of HTTP and of the work itself:

* ``constant``: answers every request with a fixed JSON body (reads and drops the request body):
  the cost of HTTP alone.
* ``same_work``: what the server must do and nothing else: read the body, ``orjson.loads`` it,
  build the float64 ``[N, n]`` array of ``inputs[0]`` (with ``Inference-Header-Content-Length``,
  the binary tensor data extension: ``orjson.loads`` of the JSON header and ``np.frombuffer`` of
  the bytes after it), one ONNX Runtime ``run`` on the package's own ``model.onnx`` (session
  options as ``slipway.packaging.open_session``: one thread), then the OIP response (label and probability tensors, model name/version, id) with
  ``orjson.dumps``. No validation, metrics, drift window, limits, request ids or error mapping.

The ONNX file comes from ``SLIPWAY_FLOOR_ONNX`` (``bench.serving`` points it at the file of the
package it built for slipway). Any GET answers 200, which serves as readiness.

    python -m uvicorn bench.floors:same_work --factory --loop uvloop --http httptools ...
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson

_HEADERS = [(b"content-type", b"application/json")]
CONSTANT_BODY = orjson.dumps({"ready": True})


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Any, body: bytes) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def constant(scope: dict, receive: Any, send: Any) -> None:
    """HTTP alone: a fixed answer to every request."""
    if scope["type"] != "http":
        return
    await _read(receive)
    await _answer(send, CONSTANT_BODY)


def _header_length(scope: dict) -> int | None:
    for name, value in scope["headers"]:
        if name == b"inference-header-content-length":
            return int(value)
    return None


def same_work() -> Any:
    """Uvicorn factory: the app doing exactly the server's work on ``SLIPWAY_FLOOR_ONNX``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        os.environ["SLIPWAY_FLOOR_ONNX"], options, providers=["CPUExecutionProvider"]
    )
    name, version = os.environ.get("SLIPWAY_FLOOR_MODEL", "slipway"), "floor"

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read(receive)
        if scope["method"] != "POST":
            await _answer(send, CONSTANT_BODY)
            return
        split = _header_length(scope)
        if split is None:
            tensor = orjson.loads(body)["inputs"][0]
            rows = np.array(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        else:  # binary tensor data: the JSON header, then the raw float64 values
            tensor = orjson.loads(body[:split])["inputs"][0]
            rows = np.frombuffer(body, dtype="<f8", offset=split).reshape(tensor["shape"])
        labels, proba = session.run(None, {"input": rows})
        n = len(rows)
        answer = orjson.dumps(
            {
                "model_name": name,
                "model_version": version,
                "id": "floor",
                "outputs": [
                    {"name": "label", "shape": [n], "datatype": "INT64", "data": labels},
                    {
                        "name": "probability",
                        "shape": [n],
                        "datatype": "FP64",
                        "data": np.ascontiguousarray(proba[:, 1]),
                    },
                ],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        await _answer(send, answer)

    return app
