"""Malformed requests: every one is a 4xx JSON ``{"error": ...}`` of at most 2 KB that never
echoes what was sent, and the server answers a valid request correctly right after."""

from __future__ import annotations

import asyncio
import json

import pytest

from slipway.serving import ServingLimits
from tests.support.serving import (
    INFER,
    features,
    infer_body,
    metric_value,
)

SENTINEL = "zq7SENTINELx9"  # placed in every request; must never come back
SENTINEL_NUMBER = 987654.123456789
ROW = [SENTINEL_NUMBER] + [1.0] * 29


def tensor(**overrides) -> dict:
    t = {"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": ROW}
    t.update(overrides)
    return t


def body(*tensors, **extra) -> bytes:
    return json.dumps({"id": SENTINEL, "inputs": list(tensors), **extra}).encode()


def columns(drop: str | None = None, extra: str | None = None, bad: str | None = None) -> bytes:
    tensors = [
        {"name": f, "shape": [1], "datatype": "FP64", "data": [SENTINEL_NUMBER]}
        for f in features().columns
        if f != drop
    ]
    if extra:
        tensors.append({"name": extra, "shape": [1], "datatype": "FP64", "data": [1.0]})
    if bad:
        tensors[0]["data"] = [bad]
    return json.dumps({"inputs": tensors}).encode()


JSON = "application/json"
CASES = {
    # (body, content type, status)
    "not json": (f"{{not json {SENTINEL}".encode(), JSON, 400),
    "truncated json": (body(tensor())[:-7], JSON, 400),
    "empty body": (b"", JSON, 400),
    "json array": (json.dumps([SENTINEL]).encode(), JSON, 400),
    "json string": (json.dumps(SENTINEL).encode(), JSON, 400),
    "json null": (b"null", JSON, 400),
    "no inputs": (json.dumps({"id": SENTINEL}).encode(), JSON, 400),
    "inputs not list": (json.dumps({"inputs": {SENTINEL: 1}}).encode(), JSON, 400),
    "empty inputs": (body(), JSON, 400),
    "tensor not object": (body(SENTINEL), JSON, 400),
    "wrong tensor name": (body(tensor(name=SENTINEL)), JSON, 400),
    "two tensors": (body(tensor(), tensor()), JSON, 400),
    "missing feature": (columns(drop="mean_radius"), JSON, 400),
    "extra feature": (columns(drop="mean_radius", extra=SENTINEL), JSON, 400),
    "text in feature": (columns(bad=SENTINEL), JSON, 400),
    "wrong datatype": (body(tensor(datatype="BYTES")), JSON, 400),
    "unknown datatype": (body(tensor(datatype=SENTINEL)), JSON, 400),
    "no datatype": (body({"name": "input-0", "shape": [1, 30], "data": ROW}), JSON, 400),
    "shape too narrow": (body(tensor(shape=[1, 29])), JSON, 400),
    "shape 1-d": (body(tensor(shape=[30])), JSON, 400),
    "shape 3-d": (body(tensor(shape=[1, 30, 1])), JSON, 400),
    "shape not ints": (body(tensor(shape=[SENTINEL, 30])), JSON, 400),
    "shape float": (body(tensor(shape=[1.0, 30])), JSON, 400),
    "shape/data mismatch": (body(tensor(shape=[2, 30])), JSON, 400),
    "data too short": (body(tensor(data=ROW[:-1])), JSON, 400),
    "empty batch": (body(tensor(shape=[0, 30], data=[])), JSON, 400),
    "negative batch": (body(tensor(shape=[-1, 30])), JSON, 400),
    "data not list": (body(tensor(data=SENTINEL)), JSON, 400),
    "null value": (body(tensor(data=[None, *ROW[1:]])), JSON, 400),
    "text value": (body(tensor(data=[SENTINEL, *ROW[1:]])), JSON, 400),
    "bool value": (body(tensor(data=[True, *ROW[1:]])), JSON, 400),
    "nested too deep": (body(tensor(data=[[[SENTINEL_NUMBER] * 30]])), JSON, 400),
    "ragged rows": (body(tensor(shape=[2, 30], data=[ROW, ROW[:-1]])), JSON, 400),
    "mixed nesting": (body(tensor(shape=[2, 30], data=[ROW, *ROW])), JSON, 400),
    "NaN literal": (body(tensor()).replace(b"1.0,", b"NaN,", 1), JSON, 400),
    "Infinity literal": (body(tensor()).replace(b"1.0,", b"Infinity,", 1), JSON, 400),
    "-Infinity literal": (body(tensor()).replace(b"1.0,", b"-Infinity,", 1), JSON, 400),
    "overflowing number": (body(tensor()).replace(b"1.0,", b"1e999,", 1), JSON, 400),
    "huge integer": (body(tensor()).replace(b"1.0,", b"9" * 400 + b",", 1), JSON, 400),
    "id not string": (json.dumps({"id": [SENTINEL], "inputs": [tensor()]}).encode(), JSON, 400),
    "id too long": (json.dumps({"id": SENTINEL * 20, "inputs": [tensor()]}).encode(), JSON, 400),
    "form content type": (body(tensor()), "application/x-www-form-urlencoded", 415),
    "text content type": (body(tensor()), "text/plain", 415),
    "html content type": (body(tensor()), "text/html", 415),
    "body over limit": (b'{"inputs": "' + SENTINEL.encode() * 300_000 + b'"}', JSON, 413),
    "batch over limit": (
        body(tensor(shape=[1025, 30], data=ROW * 1025)),
        JSON,
        413,
    ),
}


def assert_clean_error(response, status: int) -> None:
    assert response.status_code == status, response.text
    assert 400 <= response.status_code < 500
    assert len(response.content) <= 2048
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"error"}
    assert isinstance(payload["error"], str)
    assert payload["error"]
    assert SENTINEL not in response.text
    assert str(SENTINEL_NUMBER) not in response.text
    assert "Traceback" not in response.text


def assert_still_serves(client) -> None:
    ok = client.post(INFER, json=infer_body(rows=2))
    assert ok.status_code == 200
    assert ok.json()["outputs"][0]["data"] == [1, 1]  # the first two rows are malignant


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_request_is_a_clean_4xx(case: str, served) -> None:
    client, _ = served
    content, content_type, status = CASES[case]
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(INFER, content=content, headers=headers)
    assert_clean_error(response, status)
    assert_still_serves(client)


def test_content_length_over_limit_is_refused_before_reading(make_client) -> None:
    client, _ = make_client(limits=ServingLimits(max_body_bytes=1000))
    response = client.post(
        INFER, content=b"{}", headers={"content-type": JSON, "content-length": "5000000"}
    )
    assert_clean_error(response, 413)


async def asgi_post(app, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, dict]:
    """POST ``body`` to the infer route as raw ASGI messages: the header bytes arrive exactly as
    given (the test client re-encodes header values as UTF-8, so it cannot send byte 0xB2)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": INFER,
        "raw_path": INFER.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(content)


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb3", b"\xb9\xb2\xb3", b"-1", b"1e3", b""])
def test_content_length_that_is_not_ascii_digits_is_a_400(length: bytes, served) -> None:
    """ASGI decodes header bytes as latin-1: byte 0xB2 arrives as "²", which str.isdigit()
    accepts and int() refuses (a 500 before); only ASCII digits make a length."""
    client, _ = served
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    status, error = asyncio.run(asgi_post(client.app, headers, b"{}"))
    assert (status, error) == (400, {"error": "Content-Length must be a number of bytes"})
    assert_still_serves(client)


def test_streamed_body_over_limit_is_refused(make_client) -> None:
    """No Content-Length (chunked): the size is counted while reading."""
    client, _ = make_client(limits=ServingLimits(max_body_bytes=1000))

    def chunks():
        for _ in range(10):
            yield SENTINEL.encode() * 20

    response = client.post(INFER, content=chunks(), headers={"content-type": JSON})
    assert "content-length" not in response.request.headers
    assert_clean_error(response, 413)
    assert_still_serves(client)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", f"/v2/models/{SENTINEL}/infer", 404),
        ("GET", f"/v2/models/{SENTINEL}", 404),
        ("GET", f"/v2/models/{SENTINEL}/ready", 404),
        ("GET", f"/no/such/{SENTINEL}", 404),
        ("GET", INFER, 405),
        ("DELETE", "/v2/models/slipway", 405),
    ],
)
def test_unknown_model_or_route(method: str, path: str, status: int, served) -> None:
    client, _ = served
    response = client.request(method, path, json=infer_body())
    assert_clean_error(response, status)
    assert_still_serves(client)


def test_batch_rejection_is_counted(served) -> None:
    client, registry = served
    content, _, _ = CASES["batch over limit"]
    client.post(INFER, content=content, headers={"content-type": JSON})
    assert metric_value(registry, "slipway_rejected_requests_total", reason="batch_size") == 1
    assert metric_value(registry, "slipway_rejected_requests_total", reason="concurrency") == 0


@pytest.mark.parametrize(
    ("name", "builtin", "status"),
    [
        ("InvalidInput", ValueError, 400),
        ("ModelNotFound", LookupError, 404),
        ("PayloadTooLarge", ValueError, 413),
        ("BatchTooLarge", ValueError, 413),
        ("UnsupportedMediaType", ValueError, 415),
        ("TooManyRequests", RuntimeError, 429),
        ("ModelNotReady", RuntimeError, 503),
    ],
)
def test_serving_errors_join_the_one_hierarchy(name: str, builtin: type, status: int) -> None:
    from slipway.errors import SlipwayError
    from slipway.serving import errors

    error = getattr(errors, name)("what was expected")
    assert isinstance(error, errors.ServingError)
    assert isinstance(error, SlipwayError)
    assert isinstance(error, builtin)
    assert error.status == status
    assert error.message == "what was expected"


def test_load_failure_is_a_slipway_error() -> None:
    from slipway.errors import SlipwayError
    from slipway.serving import LoadFailure

    failure = LoadFailure("checksum", "bad hash")
    assert isinstance(failure, SlipwayError)
    assert isinstance(failure, RuntimeError)
    assert failure.reason == "checksum"
