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
import os
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response

from slipway.config import PACKAGE_VERSION, Settings
from slipway.serving.binary import BINARY_TYPE, EXTENSION, HEADER_LENGTH, check_media_type
from slipway.serving.columns import answer_columns
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
from slipway.serving.versioned import VERSION_KEY, VersionedInfer, unversioned

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


def _check_length(length: bytes | None, limit: int) -> None:
    """Refuse a Content-Length that is not a byte count or is over ``limit`` (before reading)."""
    if length is not None:
        # digits only: "²" (byte 0xB2) is a digit to str.isdigit and refused by int()
        if not (length.isascii() and length.isdigit()):
            raise InvalidInput("Content-Length must be a number of bytes")
        if int(length) > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")


async def _read_rest(message: dict, receive: Any, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes, from its first ASGI ``message`` on.

    :func:`infer` takes a body that came whole in one message itself; this reads the others.

    Raises:
        PayloadTooLarge: the bytes received exceed ``limit``.
        ClientDisconnect: the caller hung up first (as Starlette's ``Request.stream``).
    """
    chunks = []
    size = 0
    while True:
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif kind == "http.disconnect":
            raise ClientDisconnect
        message = await receive()


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
    _check_version(server, name, version)
    server.ready_model(name)
    return _json({"name": server.served, "ready": True})


def _headers(scope: dict) -> dict[bytes, bytes]:
    """The request headers as a dict, the first of repeated names winning (as Starlette)."""
    return dict(reversed(scope["headers"]))


_RANDOM_IDS = 256
_random_hex: list[str] = []
os.register_at_fork(after_in_child=_random_hex.clear)  # a forked worker draws its own


def _request_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` but much cheaper.

    The randomness is read from ``os.urandom`` for :data:`_RANDOM_IDS` ids at a time: one
    system call per 256 requests instead of one per request.
    """
    if not _random_hex:
        pool = os.urandom(16 * _RANDOM_IDS).hex()
        _random_hex.extend(pool[i : i + 32] for i in range(0, len(pool), 32))
    h = _random_hex.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _update_psi(metrics: ServerMetrics, window: DriftWindow) -> None:
    # the metrics' model and version are the served ones (load_model checked the manifest)
    metrics.publish_psi(window.compute())


async def infer(
    server: ServerState,
    name: str,
    headers: dict[bytes, bytes],
    receive: Any,
    version: str | None = None,
) -> tuple[bytes, int | None]:
    """POST /v2/models/{name}/infer: the answer for the body read from ``receive``.

    Called by :func:`infer_endpoint` (the route as a pure ASGI app, see :class:`ServingApp`),
    also for ``/v2/models/{name}/versions/{version}/infer`` with its ``version``.
    ``headers`` are the request's, lower-case names to values as bytes (see :func:`_headers`).

    Returns:
        ``(body, header_length)``: the JSON answer and ``None``, or, when binary outputs were
        asked for, the JSON header followed by the raw tensors and the header's length.

    Raises:
        ServingError: a subclass for each refusal; :mod:`slipway.serving.errors` maps it.
    """
    if version is not None or name != server.served:
        _check_version(server, name, version)  # the checks that need no model: never wait
    content_type = headers.get(b"content-type")
    if content_type not in _PLAIN_TYPES or b"content-encoding" in headers:
        encoding = headers.get(b"content-encoding")
        check_media_type(
            None if content_type is None else content_type.decode("latin-1"),
            None if encoding is None else encoding.decode("latin-1"),
        )
    model = server.model.model  # the name is the served one: ready_model would only check this
    if model is None:
        loaded = server.loaded
        if loaded is not None and not loaded.is_set():
            # this worker is still loading while another one already made the pod ready: wait
            # for the load (it either succeeds or ends in a 503) rather than fail the request;
            # awaiting the event holds no thread, so waiting requests cannot starve the loop's
            # default executor. After the timeout, ready_model answers the usual 503.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loaded.wait(), LOAD_WAIT_SECONDS)
        model = server.ready_model(name)
    limits, metrics = server.limits, server.metrics
    limit = limits.max_body_bytes
    length = headers.get(b"content-length")
    if length is not None and not (length.isdigit() and len(length) < 16 and int(length) <= limit):
        _check_length(length, limit)  # says what is wrong with it
    message = await receive()  # the usual case: the whole body in this one message
    body = message.get("body", b"")
    if message["type"] != "http.request" or message.get("more_body", False) or len(body) > limit:
        body = await _read_rest(message, receive, limit)
    header_length = headers.get(_HEADER_LENGTH)
    try:
        asked = decode_infer_request(
            body,
            None if header_length is None else header_length.decode("latin-1"),
            model.features,
            limits.max_batch_rows,
            model.contract,
        )
    except BatchTooLarge:
        metrics.rejected.labels("batch_size").inc()
        raise
    if asked.columns is not None:  # a model that is not plain (slipway.serving.contract)
        return _answer_columns(server, model, asked)
    rows = asked.rows
    labels, proba = model.predict(rows)
    metrics.observe_predictions(labels, proba)
    if model.drift.add(rows):
        asyncio.get_running_loop().call_soon(_update_psi, metrics, model.drift)
    return encode_infer_response(
        {
            "model_name": server.served,
            "model_version": model.version,
            "id": asked.request_id or _request_id(),
        },
        {"label": labels, "probability": proba},
        asked.outputs,
    )


def _answer_columns(server: ServerState, model: Any, asked: Any) -> tuple[bytes, int | None]:
    header = {
        "model_name": server.served,
        "model_version": model.version,
        "id": asked.request_id or _request_id(),
    }
    body, length, due = answer_columns(model, asked, server.metrics, header)
    if due:
        asyncio.get_running_loop().call_soon(_update_psi, server.metrics, model.drift)
    return body, length


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
            server_state(request), name, _headers(scope), request.receive, scope.get(VERSION_KEY)
        )
    )


@router.post(f"{VERSIONED}/infer", **INFER_DOC)
async def infer_version_documented(name: str, version: str, request: Request) -> Response:
    """Documents the versioned :func:`infer`; :class:`ServingApp` answers it before routing.

    404 names the served version when ``version`` is another.
    """
    return _response(
        *await infer(server_state(request), name, _headers(request.scope), request.receive, version)
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


_INFER_PREFIX, _INFER_SUFFIX = len("/v2/models/"), len("/infer")
# the media types infer takes as they are usually written (check_media_type reads the others)
_PLAIN_TYPES = (b"application/json", BINARY_TYPE.encode(), None)
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_BINARY_CONTENT_TYPE = (b"content-type", BINARY_TYPE.encode())
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()


class ServingApp(FastAPI):
    """The FastAPI app, except that infer requests skip FastAPI's per-request machinery.

    ``POST /v2/models/{name}/infer`` goes from :meth:`__call__` straight to
    :meth:`ServingMiddleware.infer <slipway.serving.middleware.ServingMiddleware.infer>` and
    :func:`infer_endpoint`: no telemetry check, router, exit stack or middleware chain, ~60 µs
    a request less. Every other request, and an infer path Starlette would not match (an empty
    name), takes FastAPI's way, where the same middleware instance counts it.
    ``infer_documented`` still describes the route in /openapi.json.
    """

    serving: ServingMiddleware | None = None
    server: ServerState | None = None  # app.state.server, as an attribute for the short way

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Answer one ASGI connection: infer by the short way, the rest through FastAPI."""
        if scope["type"] == "http":
            if "/versions/" in scope["path"]:
                scope = unversioned(scope)  # /versions/{v}/infer as /infer, the version kept
            path = scope["path"]
            if (
                # is_infer, written out: this runs on every request
                scope["method"] == "POST"
                and path.startswith("/v2/models/")
                and path.endswith("/infer")
                and path.count("/") == 4
                and len(path) > _INFER_PREFIX + _INFER_SUFFIX  # a name, as the route requires
                and self.serving is not None
            ):
                scope["app"] = self
                await self.serving.infer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def infer_endpoint(scope: dict, receive: Any, send: Any) -> int:
    """:func:`infer` as a pure ASGI app, its errors mapped by the app's exception handlers.

    Returns the status sent. The answer is the two ASGI messages Starlette's ``Response``
    would send. The handlers are
    the ones :func:`~slipway.serving.errors.add_exception_handlers` installed, looked up by the
    exception's class as Starlette does: a ServingError or a client hang-up is answered;
    anything else is answered 500 and re-raised, as Starlette's ServerErrorMiddleware does.
    """
    name = scope["path"][_INFER_PREFIX:-_INFER_SUFFIX]
    try:
        body, header_length = await infer(
            scope["app"].server,  # app.state.server, without Starlette's State.__getattr__
            name,
            dict(reversed(scope["headers"])),  # _headers(scope)
            receive,
            scope.get(VERSION_KEY),
        )
    except Exception as exc:
        handlers = scope["app"].exception_handlers
        cls = next(c for c in type(exc).__mro__ if c in handlers or c is Exception)
        response = await handlers[cls](StarletteRequest(scope, receive, send), exc)
        await response(scope, receive, send)
        if cls is Exception:
            raise
        return response.status_code
    headers = [(b"content-length", str(len(body)).encode())]
    if header_length is None:
        headers.append(_JSON_CONTENT_TYPE)
    else:
        headers += [_BINARY_CONTENT_TYPE, (_HEADER_LENGTH, str(header_length).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return 200


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
        infer_handler=infer_endpoint,
    )
    app.add_middleware(app.serving.wrap)
    # outermost on FastAPI's way: a versioned infer that reaches it (ServingApp rewrites it
    # first) is still counted and limited as the plain route
    app.add_middleware(VersionedInfer)
    app.include_router(router)
    app.openapi = functools.partial(build_openapi, app)
    return app
