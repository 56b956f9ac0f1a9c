"""The OpenAPI document of the model server: what the routes declare, plus what the app knows.

The infer routes are plain Starlette routes documented by FastAPI twins (see
:mod:`slipway.serving.app`); :data:`INFER_DOC` is what those twins declare: both media types of
the body and of the answer, and the ``Inference-Header-Content-Length`` header.
:func:`build_openapi` adds the request schema (:mod:`slipway.serving.schema`) and names what this
server serves.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from slipway.serving.binary import BINARY_TYPE
from slipway.serving.schema import (
    INPUT_COMPONENTS,
    INPUT_NAME,
    ErrorBody,
    InferenceRequest,
    InferenceResponse,
)
from slipway.serving.state import ServerState

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (400, 404, 408, 413, 415, 429, 503)
}

_BINARY_BODY = {
    "schema": {"type": "string", "format": "binary"},
    "description": "binary tensor data extension: the JSON (InferenceRequest / "
    "InferenceResponse) in its first Inference-Header-Content-Length bytes, then the raw "
    "little-endian tensors of the inputs / outputs that carry parameters.binary_data_size, "
    "in their order",
}
INFER_DOC: dict[str, Any] = {
    "tags": ["inference"],
    "responses": {
        200: {
            "model": InferenceResponse,
            "content": {BINARY_TYPE: _BINARY_BODY},
            "headers": {
                "Inference-Header-Content-Length": {
                    "description": "with binary outputs: the length of the JSON part",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
        },
        **ERRORS,
    },
    "openapi_extra": {
        "parameters": [
            {
                "name": "Inference-Header-Content-Length",
                "in": "header",
                "required": False,
                "description": "with binary inputs: the length of the JSON part of the body",
                "schema": {"type": "integer", "minimum": 0},
            }
        ],
        "requestBody": {
            "required": True,
            "description": "JSON, or binary tensor data; with no Content-Type it is read as "
            "JSON (or as binary tensor data when Inference-Header-Content-Length is given)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                BINARY_TYPE: _BINARY_BODY,
            },
        },
    },
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the InferenceRequest schema the plain infer route reads.

    It names what this server serves: the ``name`` and ``version`` path parameters are enums of
    the served model and version, and, once the model is loaded, tensor names are
    ``input-0`` or one of its features. Built again until then, cached after.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    request_schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["InferenceRequest"] = request_schema
    server: ServerState = app.state.server
    served = {"name": server.served, "version": server.model.version}
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                value = served.get(parameter["name"]) if parameter["in"] == "path" else None
                if value:
                    parameter["schema"] = {"type": "string", "enum": [value]}
    model = server.model.model
    if model is not None:
        contract = model.contract
        names = [INPUT_NAME, *model.features] if contract.takes_matrix else list(model.features)
        for tensor in INPUT_COMPONENTS:
            components[tensor]["properties"]["name"]["enum"] = names
        examples = _examples(model) if not contract.plain else _matrix_examples(model)
        for path, operations in schema["paths"].items():
            if path.endswith("/infer"):
                body = operations["post"]["requestBody"]["content"]["application/json"]
                body["examples"] = {k: {"value": v} for k, v in examples.items()}
        app.openapi_schema = schema
    return schema


def _matrix_examples(model: Any) -> dict[str, Any]:
    """A plain model's examples: one ``input-0`` row."""
    row = {"name": INPUT_NAME, "shape": [1, len(model.features)], "datatype": "FP64"}
    return {
        "one row": {"inputs": [{**row, "data": [0.0] * len(model.features)}]},
        "binary outputs": {
            "inputs": [{**row, "data": [1.0] * len(model.features)}],
            "outputs": [{"name": "probability", "parameters": {"binary_data": True}}],
        },
    }


def _examples(model: Any) -> dict[str, Any]:
    """A model's examples: one row, a tensor per feature, typical of the training data.

    A number's training mean, a boolean's more frequent value, a categorical's most frequent
    category (as a string).
    """
    stats = model.manifest.get("training_stats", {})
    inputs = []
    for feature in model.contract.features:
        record = stats.get(feature.name, {})
        tensor = {"name": feature.name, "shape": [1]}
        if feature.kind == "categorical":
            categories = record.get("categories") or list(feature.categories) or ["a"]
            fractions = record.get("fractions") or [1.0] * len(categories)
            top = categories[max(range(len(categories)), key=fractions.__getitem__)]
            inputs.append({**tensor, "datatype": "BYTES", "data": [top]})
        elif feature.kind == "boolean":
            inputs.append(
                {**tensor, "datatype": "BOOL", "data": [record.get("true_fraction", 0) >= 0.5]}
            )
        else:
            mean = record.get("mean")
            inputs.append({**tensor, "datatype": "FP64", "data": [float(mean or 0.0)]})
    first = next(iter(model.contract.outputs))
    return {
        "one row": {"inputs": inputs},
        "binary outputs": {
            "inputs": inputs,
            "outputs": [{"name": first, "parameters": {"binary_data": True}}],
        },
    }
