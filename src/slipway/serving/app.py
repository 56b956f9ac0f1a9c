"""The model server: an Open Inference Protocol (v2) REST app around one verified model.

``create_app(settings)`` assembles the app from the module-level routes below, which reach the
served model through ``request.app.state.server`` (a :class:`~slipway.serving.state.ServerState`,
loaded at start-up by :func:`~slipway.serving.state.lifespan`). See docs/serving.md for the
routes, the error table and the measured speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.responses import Response
from starlette.routing import Route

from slipway.config import PACKAGE_VERSION, Settings
from slipway.serving.binary import BINARY_TYPE, EXTENSION, HEADER_LENGTH, check_media_type
from slipway.serving.drift import DriftWindow
from slipway.serving.errors import (
    BatchTooLarge,
    InvalidInput,
    ModelVersionNotFound,
    PayloadTooLarge,
    add_exception_handlers,
)
from slipway.serving.limits import ServingLimits
from slipway.serving.metrics import ServerMetrics, render_metrics
from slipway.serving.middleware import ServingMiddleware
from slipway.serving.model import ModelState
from slipway.serving.openapi import ERRORS, INFER_DOC, build_openapi
from slipway.serving.protocol import decode_infer_request, encode_infer_response
from slipway.serving.schema import INPUT_NAME, ErrorBody, ModelMetadata, ServerMetadata
from slipway.serving.state import ServerState, lifespan, server_state
from slipway.serving.versioned import VERSION_KEY, VersionedInfer

log = logging.getLogger("slipway.serving")
INFER_PATH = "/v2/models/{name}/infer"
VERSIONED = "/v2/models/{name}/versions/{version}"
# the protocol extensions implemented, as GET /v2 lists them
EXTENSIONS = [EXTENSION]
# how long an infer request waits for a model that is still loading in its worker
LOAD_WAIT_SECONDS = 30.0
DOCS_ASSETS = "/docs-assets"


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        # isdigit() alone accepts "²" (header bytes are latin-1 in ASGI), which int() refuses
        if not (length.isascii() and length.isdigit()):
            raise InvalidInput("Content-Length must be a number of bytes")
        if int(length) > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


router = APIRouter()


@router.get("/v2/health/live", tags=["health"])
async def live() -> Response:
    """Liveness: the process answers."""
    return _json({"live": True})


@router.get("/v2/health/ready", tags=["health"], responses={503: {"model": ErrorBody}})
async def ready(request: Request) -> Response:
    """Readiness: 200 once the model is verified and loaded, else 503."""
    server = server_state(request)
    server.ready_model(server.served)
    return _json({"ready": True})


@router.get("/v2", tags=["metadata"], responses={200: {"model": ServerMetadata}})
async def server_metadata() -> Response:
    """The server's name, version and protocol extensions."""
    return _json({"name": "slipway-server", "version": PACKAGE_VERSION, "extensions": EXTENSIONS})


def _check_version(server: ServerState, name: str, version: str | None) -> None:
    """Refuse a versioned route naming another model or version (no model needed: no wait)."""
    server.check_name(name)
    if version is not None and version != server.model.version:
        raise ModelVersionNotFound(
            f"this server serves version '{server.model.version}' of model '{server.served}' only"
        )


@router.get(
    "/v2/models/{name}",
    tags=["metadata"],
    responses={200: {"model": ModelMetadata}, **ERRORS},
)
async def model_metadata(name: str, request: Request) -> Response:
    """The served model's version, runtime, input and output tensors."""
    return _metadata(server_state(request), name)


@router.get(VERSIONED, tags=["metadata"], responses={200: {"model": ModelMetadata}, **ERRORS})
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    """The model metadata, for the served version only (404 names the served version)."""
    server = server_state(request)
    _check_version(server, name, version)
    return _metadata(server, name)


def _metadata(server: ServerState, name: str) -> Response:
    model = server.ready_model(name)
    n = len(model.features)
    return _json(
        {
            "name": server.served,
            "versions": [model.version],
            "platform": model.runtime,
            "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, n]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probability", "datatype": "FP64", "shape": [-1]},
            ],
            "parameters": {
                "features": model.features,
                "positive_class": model.manifest.get("positive_class", 1),
                "max_batch_rows": server.limits.max_batch_rows,
            },
        }
    )


@router.get("/v2/models/{name}/ready", tags=["health"], responses=ERRORS)
async def model_ready(name: str, request: Request) -> Response:
    """Per-model readiness."""
    server = server_state(request)
    server.ready_model(name)
    return _json({"name": server.served, "ready": True})


@router.get(f"{VERSIONED}/ready", tags=["health"], responses=ERRORS)
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    """Per-model readiness, for the served version only (404 names the served version)."""
    server = server_state(request)
    _check_version(server, name, version)
    server.ready_model(name)
    return _json({"name": server.served, "ready": True})


def _update_psi(server: ServerState, window: DriftWindow, version: str) -> None:
    for feature, value in window.compute().items():
        server.metrics.feature_psi.labels(server.served, version, feature).set(value)


async def infer(request: Request) -> Response:
    """POST /v2/models/{name}/infer, as a plain Starlette endpoint (see :func:`create_app`).

    Also ``/v2/models/{name}/versions/{version}/infer``, which :class:`VersionedInfer` hands on
    with the version in the scope.

    Raises:
        ServingError: a subclass for each refusal; :mod:`slipway.serving.errors` maps it.
    """
    server = server_state(request)
    name = request.path_params["name"]
    # the checks that need no model first: they never wait for a load
    _check_version(server, name, request.scope.get(VERSION_KEY))
    headers = request.headers
    check_media_type(headers.get("content-type"), headers.get("content-encoding"))
    loaded = server.loaded
    if not server.model.ready and loaded is not None and not loaded.is_set():
        # this worker is still loading while another one already made the pod ready: wait
        # for the load (it either succeeds or ends in a 503) rather than fail the request;
        # awaiting the event holds no thread, so waiting requests cannot starve the loop's
        # default executor. After the timeout, ready_model answers the usual 503.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loaded.wait(), LOAD_WAIT_SECONDS)
    model = server.ready_model(name)
    limits, metrics = server.limits, server.metrics
    body = await _read_body(request, limits.max_body_bytes)
    try:
        asked = decode_infer_request(
            body, headers.get(HEADER_LENGTH), model.features, limits.max_batch_rows
        )
    except BatchTooLarge:
        metrics.rejected.labels("batch_size").inc()
        raise
    rows = asked.rows
    labels, proba = model.predict(rows)
    metrics.observe_predictions(labels, proba)
    if model.drift.add(rows):
        asyncio.get_running_loop().call_soon(_update_psi, server, model.drift, model.version)
    body, header_length = encode_infer_response(
        {
            "model_name": server.served,
            "model_version": model.version,
            "id": asked.request_id or str(uuid.uuid4()),
        },
        {"label": labels, "probability": proba},
        asked.outputs,
    )
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(body, media_type=BINARY_TYPE, headers={HEADER_LENGTH: str(header_length)})


@router.post(INFER_PATH, **INFER_DOC)
async def infer_documented(name: str, request: Request) -> Response:
    """Documents :func:`infer` in /openapi.json; the Starlette route placed first answers."""
    return await infer(request)


@router.post(f"{VERSIONED}/infer", **INFER_DOC)
async def infer_version_documented(name: str, version: str, request: Request) -> Response:
    """Documents the versioned :func:`infer`; :class:`VersionedInfer` routes it to the plain one.

    404 names the served version when ``version`` is another.
    """
    return await infer(request)


@router.get(
    "/metrics",
    tags=["metrics"],
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
    response_class=Response,
)
async def metrics_route(request: Request) -> Response:
    """Prometheus exposition of this worker (or of every worker, in multiprocess mode)."""
    server = server_state(request)
    body, content_type = render_metrics(server.metrics.registry, server.multiproc_dir)
    return Response(body, media_type=content_type)


def create_app(
    settings: Settings,
    *,
    limits: ServingLimits | None = None,
    registry: CollectorRegistry | None = None,
    multiproc_dir: str | None = None,
    background_load: bool = True,
) -> FastAPI:
    """Build the server for ``settings.model_name`` version ``settings.model_version``.

    Args:
        settings: the configuration (model name and version, EFS root).
        limits: backpressure limits (default :class:`ServingLimits`).
        registry: where metrics register (a fresh one by default; tests pass their own).
        multiproc_dir: prometheus-client multiprocess folder, when several workers serve.
        background_load: load the model in a thread at start-up (``False`` loads before serving,
            which tests use).

    Returns:
        The FastAPI app: the routes of :data:`router`, the error mapping and the middleware.
    """
    limits = limits or ServingLimits()
    served = settings.model_name
    metrics = ServerMetrics(registry or CollectorRegistry(), served, settings.model_version or "")
    state = ModelState(served, settings.model_version)
    # /docs and /redoc from the assets fastapi-offline ships (Swagger UI 5, which renders
    # OpenAPI 3.1), served at DOCS_ASSETS: the pods need no CDN, and no browser fetches one;
    # validatorUrl None: Swagger UI would otherwise load a badge from validator.swagger.io
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},
        title="slipway model server",
        version=PACKAGE_VERSION,
        description="Open Inference Protocol (v2) REST; see docs/serving.md.",
        lifespan=lifespan,
    )
    app.state.server = ServerState(
        served=served,
        model=state,
        metrics=metrics,
        limits=limits,
        efs_root=Path(settings.efs_root),
        background_load=background_load,
        multiproc_dir=multiproc_dir,
    )
    app.state.model = state
    app.state.metrics = metrics
    add_exception_handlers(app)
    app.add_middleware(
        ServingMiddleware,
        metrics=metrics,
        max_concurrency=limits.max_concurrency,
        body_timeout=limits.body_timeout_seconds,
    )
    # outermost: the versioned infer path becomes the plain one before the middleware sees it
    app.add_middleware(VersionedInfer)
    app.include_router(router)
    # FastAPI's per-request dependency solving costs ~120 µs, half of this route's time in
    # process: the route that runs is a plain Starlette Route placed first; the FastAPI route
    # (infer_documented) only documents it in /openapi.json (same path and method, never reached).
    app.router.routes.insert(0, Route(INFER_PATH, infer, methods=["POST"]))
    app.openapi = functools.partial(build_openapi, app)
    return app
