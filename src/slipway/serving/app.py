"""The model server: an Open Inference Protocol (v2) REST app around one verified model.

``create_app(settings)`` assembles the app from the module-level routes below, which reach the
served model through ``request.app.state.server`` (a :class:`~slipway.serving.state.ServerState`,
loaded at start-up by :func:`~slipway.serving.state.lifespan`). See docs/serving.md for the
routes, the error table and the measured speed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from slipway.config import PACKAGE_VERSION, Settings
from slipway.serving.binary import BINARY_TYPE, EXTENSION, HEADER_LENGTH
from slipway.serving.errors import (
    add_exception_handlers,
)
from slipway.serving.infer import ServingApp, check_version, infer, request_headers
from slipway.serving.limits import ServingLimits
from slipway.serving.metrics import ServerMetrics, render_metrics
from slipway.serving.middleware import ServingMiddleware
from slipway.serving.model import ModelState
from slipway.serving.openapi import ERRORS, INFER_DOC, build_openapi
from slipway.serving.schema import INPUT_NAME, ErrorBody, ModelMetadata, ServerMetadata
from slipway.serving.state import ServerState, lifespan, server_state
from slipway.serving.versioned import VERSION_KEY, VersionedInfer

log = logging.getLogger("slipway.serving")
INFER_PATH = "/v2/models/{name}/infer"
VERSIONED = "/v2/models/{name}/versions/{version}"
# the protocol extensions implemented, as GET /v2 lists them
EXTENSIONS = [EXTENSION]
DOCS_ASSETS = "/docs-assets"


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


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
    check_version(server, name, version)
    return _metadata(server, name)


def _metadata(server: ServerState, name: str) -> Response:
    model = server.ready_model(name)
    contract = model.contract
    if not contract.plain:  # the inputs, outputs and parameters the manifest describes
        return _json(
            {
                "name": server.served,
                "versions": [model.version],
                "platform": model.runtime,
                "inputs": contract.metadata_inputs(),
                "outputs": contract.metadata_outputs(),
                "parameters": {
                    **contract.metadata_parameters(),
                    "max_batch_rows": server.limits.max_batch_rows,
                },
            }
        )
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
    check_version(server, name, version)
    server.ready_model(name)
    return _json({"name": server.served, "ready": True})


def _response(body: bytes, header_length: int | None) -> Response:
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(body, media_type=BINARY_TYPE, headers={HEADER_LENGTH: str(header_length)})


@router.post(INFER_PATH, **INFER_DOC)
async def infer_documented(name: str, request: Request) -> Response:
    """Documents :func:`infer` in /openapi.json; :class:`ServingApp` answers before routing."""
    scope = request.scope
    return _response(
        *await infer(
            server_state(request),
            name,
            request_headers(scope),
            request.receive,
            scope.get(VERSION_KEY),
        )
    )


@router.post(f"{VERSIONED}/infer", **INFER_DOC)
async def infer_version_documented(name: str, version: str, request: Request) -> Response:
    """Documents the versioned :func:`infer`; :class:`ServingApp` answers it before routing.

    404 names the served version when ``version`` is another.
    """
    return _response(
        *await infer(
            server_state(request), name, request_headers(request.scope), request.receive, version
        )
    )


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
    server.metrics.flush()  # this worker's tallies; the registry flushes too, files do not
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
    # fastapi-offline builds a FastAPI with a function, not a class: the subclass that adds the
    # infer short way is set on the instance (it adds a method and an attribute, no state)
    app.__class__ = ServingApp
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
    app.server = app.state.server
    app.state.metrics = metrics
    add_exception_handlers(app)
    # one instance, both in FastAPI's middleware stack and the short way infer takes
    app.serving = ServingMiddleware(
        None,
        metrics=metrics,
        max_concurrency=limits.max_concurrency,
        body_timeout=limits.body_timeout_seconds,
    )
    app.infer_paths = frozenset({f"/v2/models/{served}/infer"})
    app.add_middleware(app.serving.wrap)
    # outermost on FastAPI's way: a versioned infer that reaches it (ServingApp rewrites it
    # first) is still counted and limited as the plain route
    app.add_middleware(VersionedInfer)
    app.include_router(router)
    app.openapi = functools.partial(build_openapi, app)
    return app
