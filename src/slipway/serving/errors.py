"""The one place where exceptions become HTTP statuses and JSON error bodies.

Routes raise; they never build an error body. Every body is ``{"error": "<fixed sentence>"}``,
at most 2 KB, and never contains what the caller sent (values, names, ids) or a stack trace:
messages describe what was *expected*, so a caller can fix the request without the server
reflecting untrusted input back (log injection, XSS in dashboards, data leaks in shared logs).
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from slipway.errors import SlipwayError

log = logging.getLogger("slipway.serving")

MAX_ERROR_BYTES = 2048
# nginx's "client closed request": not an HTTP status a client ever reads (it has gone), but the
# status the metrics count, so that a hang-up is a 4xx, not a server error
CLIENT_CLOSED_REQUEST = 499


class ServingError(SlipwayError):
    """Base of the errors a route may raise; ``status`` is the HTTP status it maps to.

    Each subclass also inherits the matching builtin, as every slipway error does.

    Attributes:
        message: a fixed sentence saying what was expected; it never echoes the request.
    """

    status = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError, ValueError):
    """The request body or its tensors are malformed (400)."""

    status = 400


class ModelNotFound(ServingError, LookupError):
    """The request names a model this server does not serve (404)."""

    status = 404


class ModelVersionNotFound(ModelNotFound):
    """A versioned route names a version this server does not serve (404)."""


class PayloadTooLarge(ServingError, ValueError):
    """The body is larger than the server accepts (413)."""

    status = 413


class BatchTooLarge(PayloadTooLarge):
    """More rows than the batch limit (counted as ``rejected{reason="batch_size"}``)."""


class UnsupportedMediaType(ServingError, ValueError):
    """The body is not JSON or binary tensor data, or is compressed (415)."""

    status = 415


class RequestTimeout(ServingError, TimeoutError):
    """The body did not arrive in time (408); the connection is closed after the answer."""

    status = 408
    headers = {"connection": "close"}  # noqa: RUF012 - read only


class TooManyRequests(ServingError, RuntimeError):
    """Too many concurrent requests in this worker (429)."""

    status = 429


class ModelNotReady(ServingError, RuntimeError):
    """The model is still loading, or failed to load (503)."""

    status = 503


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON ``{"error": ...}`` response, truncated so the body stays under 2 KB."""
    body = orjson.dumps({"error": message[:1500]})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


_STATUS_MESSAGES = {
    404: "no such route; see /docs for the routes this server has",
    405: "method not allowed on this route; see /docs",
}


def add_exception_handlers(app: FastAPI) -> None:
    """Install the mapping from exceptions to statuses on ``app``.

    ServingError -> its status; framework errors -> 4xx; a client that hung up mid-body -> 499;
    anything else -> 500.
    """

    async def serving_error(_: Request, exc: ServingError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # starlette's own 404/405: a fixed sentence, not exc.detail (which may name the path)
        message = _STATUS_MESSAGES.get(exc.status_code, "request refused")
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        # only path parameters are validated by FastAPI here; never echo their values
        return error_response(400, "invalid request parameters; see /docs")

    async def client_disconnected(_: Request, exc: ClientDisconnect) -> Response:
        # the caller hung up while sending its body: nothing is wrong here, and nobody reads
        # the answer; one line in the log, no stack trace
        log.info("client closed the connection before sending the whole request body (499)")
        return error_response(CLIENT_CLOSED_REQUEST, "client closed request")

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error while serving a request")
        return error_response(500, "internal error; the server log has the details")

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ClientDisconnect, client_disconnected)
    app.add_exception_handler(Exception, unexpected)
