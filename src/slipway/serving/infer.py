"""Infer: the request's way through the server, and the short way :class:`ServingApp` sends it by.

:func:`infer` reads, checks and answers one ``POST /v2/models/{name}/infer`` (also its versioned
route); :func:`answer_infer` is what :class:`ServingApp` runs for every infer request: the
concurrency limit, the body deadline, :func:`infer`, the error mapping, the two ASGI messages
of the answer and the request's metrics, in one coroutine. It used to be three (the
middleware's ``infer``, an ASGI endpoint, then :func:`infer`), spread over two modules; the
merge itself saved no measurable instructions (docs/serving.md, "Performance"), but the whole
way now reads in one place. FastAPI's documented routes (:mod:`slipway.serving.app`) call
:func:`infer` too, so both ways answer the same. :func:`answer_body` is infer's part after the
body is read; for the served model's own path, with the model loaded and the usual headers,
:func:`answer_infer` reads the body itself and calls it (infer's checks would say nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest

from slipway.packaging import ONNX_INPUT
from slipway.serving.binary import BINARY_TYPE, HEADER_LENGTH, check_media_type
from slipway.serving.columns import answer_columns
from slipway.serving.drift import DriftWindow
from slipway.serving.errors import (
    BatchTooLarge,
    InvalidInput,
    ModelVersionNotFound,
    PayloadTooLarge,
)
from slipway.serving.metrics import ServerMetrics
from slipway.serving.middleware import ServingMiddleware
from slipway.serving.protocol import (
    ALL_OUTPUTS,
    UNPARSED,
    decode_infer_request,
    encode_infer_response,
    encode_one_answer,
    encode_plain_answer,
    loads_json,
    one_row,
)
from slipway.serving.state import ServerState
from slipway.serving.versioned import VERSION_KEY, unversioned

# how long an infer request waits for a model that is still loading in its worker
LOAD_WAIT_SECONDS = 30.0
# the media types infer takes as they are usually written (check_media_type reads the others)
_PLAIN_TYPES = (b"application/json", BINARY_TYPE.encode(), None)
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_BINARY_CONTENT_TYPE = (b"content-type", BINARY_TYPE.encode())
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()
_INFER_PREFIX, _INFER_SUFFIX = len("/v2/models/"), len("/infer")
# bodies up to this size may be the usual one-row request (parsed once, then looked at)
_ONE_ROW_BYTES = 16 * 1024


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


def check_version(server: ServerState, name: str, version: str | None) -> None:
    """Refuse a versioned route naming another model or version (no model needed: no wait)."""
    server.check_name(name)
    if version is not None and version != server.model.version:
        raise ModelVersionNotFound(
            f"this server serves version '{server.model.version}' of model '{server.served}' only"
        )


def request_headers(scope: dict) -> dict[bytes, bytes]:
    """The request headers as a dict, the first of repeated names winning (as Starlette)."""
    return dict(reversed(scope["headers"]))


def _new_id_prefix() -> str:
    """A random prefix of a version-4 UUID's text: everything but its last 12 hex digits."""
    h = os.urandom(10).hex()  # 20 hex digits: 19 are used, with the version and variant
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-"


_id_prefix = _new_id_prefix()
_id_count = itertools.count()


def _fork_ids() -> None:
    global _id_prefix, _id_count  # a forked worker must not repeat the parent's ids
    _id_prefix, _id_count = _new_id_prefix(), itertools.count()


os.register_at_fork(after_in_child=_fork_ids)


def _request_id() -> str:
    """A unique id in a version-4 UUID's form, for an answer whose request named none.

    Its first 20 hex digits are random, drawn once per process (and again in a forked
    worker); the last 12 count this process's answers. Unique across workers and pods as a
    random UUID is (76 random bits a process), for one f-string a request: formatting a
    random UUID's text was ~55 bytecodes a request, this is ~8.
    """
    return f"{_id_prefix}{next(_id_count):012x}"


def check_unloaded(
    server: ServerState, name: str, headers: dict[bytes, bytes], version: str | None
) -> None:
    """The checks that need no model, made before any wait for one: name, version, media type."""
    if version is not None or name != server.served:
        check_version(server, name, version)
    content_type = headers.get(b"content-type")
    if content_type not in _PLAIN_TYPES or b"content-encoding" in headers:
        encoding = headers.get(b"content-encoding")
        check_media_type(
            None if content_type is None else content_type.decode("latin-1"),
            None if encoding is None else encoding.decode("latin-1"),
        )


async def wait_for_load(server: ServerState) -> None:
    """Wait, at most :data:`LOAD_WAIT_SECONDS`, for a load this worker is still making.

    This worker is still loading while another one already made the pod ready: the request
    waits for the load (it either succeeds or ends in a 503) rather than fail; awaiting the
    event holds no thread, so waiting requests cannot starve the loop's default executor.
    After the timeout, ``ready_model`` answers the usual 503.
    """
    loaded = server.loaded
    if loaded is not None and not loaded.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loaded.wait(), LOAD_WAIT_SECONDS)


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

    Called by :func:`answer_infer` (the short way, see :class:`ServingApp`) and by the documented routes,
    also for ``/v2/models/{name}/versions/{version}/infer`` with its ``version``.
    ``headers`` are the request's, lower-case names to values as bytes (see :func:`request_headers`).

    Returns:
        ``(body, header_length)``: the JSON answer and ``None``, or, when binary outputs were
        asked for, the JSON header followed by the raw tensors and the header's length.

    Raises:
        ServingError: a subclass for each refusal; :mod:`slipway.serving.errors` maps it.
    """
    if (
        version is not None
        or name != server.served
        or headers.get(b"content-type") not in _PLAIN_TYPES
        or b"content-encoding" in headers
    ):
        check_unloaded(server, name, headers, version)  # says what is wrong, if anything
    model = server.model.model  # the name is the served one: ready_model would only check this
    if model is None:
        await wait_for_load(server)
        model = server.ready_model(name)
    limits = server.limits
    limit = limits.max_body_bytes
    length = headers.get(b"content-length")
    # ASCII digits, fewer than the limit has: within it, without parsing the number
    if length is not None and not (length.isdigit() and len(length) < limits.body_digits):
        _check_length(length, limit)  # the other lengths: refuses the bad ones, says why
    message = await receive()  # the usual case: the whole body in this one message
    body = message.get("body", b"")
    if message["type"] != "http.request" or message.get("more_body", False) or len(body) > limit:
        body = await _read_rest(message, receive, limit)
    return answer_body(server, model, headers, body)


def answer_body(
    server: ServerState, model: Any, headers: dict[bytes, bytes], body: bytes
) -> tuple[bytes, int | None]:
    """The answer to an infer request whose body has been read (the rest of :func:`infer`).

    ``model`` is the served one, loaded; the request's name, version and media type were
    checked. Returns and raises as :func:`infer`.

    The usual request (one row in the documented form, :func:`~slipway.serving.protocol.one_row`)
    of a model whose rows go straight into one ONNX session (``LoadedModel.rows_session``) is
    answered in a few steps: ONNX Runtime's label and probability are taken as Python numbers,
    held for the metrics' flush and written by :func:`~slipway.serving.protocol.encode_one_answer`.
    Any other request takes the general way, which answers the usual one with the same bytes
    (``tests/unit/serving/test_app.py``).
    """
    metrics = server.metrics
    header_length = headers.get(_HEADER_LENGTH)
    payload = UNPARSED
    session = model.rows_session
    if session is not None and header_length is None and len(body) <= _ONE_ROW_BYTES:
        payload = loads_json(body)
        row = one_row(payload, len(model.features))
        if row is not None:  # the usual request, the usual answer: predict_onnx for one row
            labels, proba = session.run(None, {ONNX_INPUT: row})
            label, score = labels.item(), proba[0, 1].item()
            served_rows, served_labels, served_scores = metrics.served  # binned at the flush
            served_rows.append(row)
            served_labels.append(label)
            served_scores.append(score)
            return encode_one_answer(
                server.served, model.version, _request_id(), label, score
            ), None
    try:
        asked = decode_infer_request(
            body,
            None if header_length is None else header_length.decode("latin-1"),
            model.features,
            server.limits.max_batch_rows,
            model.contract,
            payload,
        )
    except BatchTooLarge:
        metrics.rejected.labels("batch_size").inc()
        raise
    if asked.columns is not None:  # a model that is not plain (slipway.serving.contract)
        return _answer_columns(server, model, asked)
    rows = asked.rows
    labels, proba = model.predict(rows)
    if len(rows) == 1:  # the usual request: binned with the others at the metrics' flush
        served_rows, served_labels, served_scores = metrics.served
        served_rows.append(rows)
        served_labels.append(labels.item())
        served_scores.append(proba.item())
    else:  # a batch, binned now: a second of them would be a lot of rows to hold
        metrics.observe_predictions(labels, proba)
        if model.drift.add(rows):
            asyncio.get_running_loop().call_soon(_update_psi, metrics, model.drift)
    if asked.outputs is ALL_OUTPUTS:  # the usual answer
        return encode_plain_answer(
            server.served, model.version, asked.request_id or _request_id(), labels, proba
        ), None
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


class ServingApp(FastAPI):
    """The FastAPI app, except that infer requests skip FastAPI's per-request machinery.

    ``POST /v2/models/{name}/infer`` (and its versioned route) goes from :meth:`__call__`
    straight to :func:`answer_infer`: no telemetry check, router, exit stack or middleware
    chain. Every other request, and an infer path Starlette would not match (an empty name),
    takes FastAPI's way, where the same :class:`ServingMiddleware` instance counts and limits
    it. The documented routes still describe infer in /openapi.json.
    """

    serving: ServingMiddleware | None = None
    server: ServerState | None = None  # app.state.server, as an attribute for the short way
    # the served model's infer path(s), looked up first: the usual request, in one step
    infer_paths: frozenset[str] = frozenset()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Answer one ASGI connection: infer by the short way, the rest through FastAPI."""
        if scope["type"] == "http":
            if scope["path"] in self.infer_paths and scope["method"] == "POST":
                await answer_infer(self, scope, receive, send, True)  # scope["app"] on errors
                return
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
                await answer_infer(self, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _answer_error(
    app: ServingApp, scope: dict, receive: Any, send: Any, exc: Exception
) -> tuple[int, bool]:
    """Answer ``exc`` by its handler; ``(status, whether it is unexpected: a 500 to re-raise)``."""
    scope["app"] = app
    handlers = app.exception_handlers
    cls = next(c for c in type(exc).__mro__ if c in handlers or c is Exception)
    response = await handlers[cls](StarletteRequest(scope, receive, send), exc)
    await response(scope, receive, send)
    return response.status_code, cls is Exception


async def answer_infer(
    app: ServingApp, scope: dict, receive: Any, send: Any, served: bool = False
) -> None:
    """Answer an infer request by :func:`infer`: limited, timed, counted, errors mapped.

    ``served``: the path is the served model's unversioned infer path (``app.infer_paths``).
    With the model loaded and the usual headers, infer's checks then pass without a word,
    and this reads the body and calls :func:`answer_body` itself.

    What :class:`ServingMiddleware` does around FastAPI (the concurrency limit: 429 beyond it;
    the body deadline; the in-flight count; the request's metrics), and what Starlette does
    around an endpoint: the error is answered by the handler
    :func:`~slipway.serving.errors.add_exception_handlers` installed for its class, looked up
    along its MRO as Starlette does; a ServingError or a client hang-up is answered, anything
    else is answered 500 and re-raised, as Starlette's ServerErrorMiddleware does. The answer
    is the two ASGI messages Starlette's ``Response`` would send.
    """
    serving = app.serving
    started = time.perf_counter()
    if serving.active >= serving.max_concurrency:
        await serving.reject(send, "POST", started)
        return
    server = app.server
    metrics = server.metrics
    status = 500  # an exception before the response started is a 5xx
    serving.active += 1  # also the in-flight gauge's infer requests (see ServerMetrics.flush)
    try:
        if server.model.model is None:  # before the body deadline starts: the load has its own
            try:
                path, version = scope["path"][_INFER_PREFIX:-_INFER_SUFFIX], scope.get(VERSION_KEY)
                check_unloaded(server, path, dict(reversed(scope["headers"])), version)
            except Exception as exc:
                status, _ = await _answer_error(app, scope, receive, send, exc)
                return
            await wait_for_load(server)
        # the body deadline: the request's task is registered while infer runs, and the
        # deadlines' sweep (every tick) cancels it once past its deadline; infer awaits nothing
        # but the body (its load wait is over), and the answer is sent after it is unregistered
        deadlines = serving.deadlines
        task = deadlines.enter(started + serving.body_timeout)
        waiting = deadlines.waiting
        try:
            headers = dict(reversed(scope["headers"]))  # request_headers(scope)
            model = server.model.model
            length = headers.get(b"content-length")
            limits = server.limits
            if (  # infer's checks, when they pass without a word: infer written out
                served
                and model is not None
                and headers.get(b"content-type") in _PLAIN_TYPES
                and b"content-encoding" not in headers
                and (length is None or (length.isdigit() and len(length) < limits.body_digits))
            ):
                limit = limits.max_body_bytes
                message = await receive()  # the usual case: the whole body in this one message
                body = message.get("body", b"")
                if (
                    message["type"] != "http.request"
                    or message.get("more_body", False)
                    or len(body) > limit
                ):
                    body = await _read_rest(message, receive, limit)
                body, header_length = answer_body(server, model, headers, body)
            else:
                body, header_length = await infer(
                    server,
                    scope["path"][_INFER_PREFIX:-_INFER_SUFFIX],
                    headers,
                    receive,
                    scope.get(VERSION_KEY),
                )
        except asyncio.CancelledError:
            del waiting[task]
            timeout = deadlines.timed_out(task)
            if timeout is None:  # not the deadline's (the server is stopping): a 5xx
                raise
            status, _ = await _answer_error(app, scope, receive, send, timeout)
            return
        except Exception as exc:
            del waiting[task]
            status, unexpected = await _answer_error(app, scope, receive, send, exc)
            if unexpected:
                raise
            return
        del waiting[task]
        length = (b"content-length", str(len(body)).encode())
        headers = (
            [length, _JSON_CONTENT_TYPE]
            if header_length is None
            else [length, _BINARY_CONTENT_TYPE, (_HEADER_LENGTH, str(header_length).encode())]
        )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        status = 200
    finally:
        serving.active -= 1
        statuses, seconds = metrics.answered  # binned by metrics.flush
        statuses.append(status)
        seconds.append(time.perf_counter() - started)
