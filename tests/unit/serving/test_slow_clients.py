"""The body timeout and client hang-ups, as raw ASGI messages against the app."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from slipway.serving import ServingLimits
from tests.support.serving import INFER, infer_body, metric_value


def scope(length: int) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": INFER,
        "raw_path": INFER.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def post_half(app, then: str) -> list[dict]:
    """Send half an infer body, then stall (``then="stall"``) or hang up (``"disconnect"``)."""
    body = json.dumps(infer_body(1)).encode()
    incoming = [{"type": "http.request", "body": body[:40], "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop(0)
        if then == "stall":
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope(len(body)), receive, send), 5)
    return sent


def test_a_stalled_body_is_a_408_that_closes_the_connection_and_frees_the_slot(
    make_client,
) -> None:
    client, registry = make_client(
        limits=ServingLimits(body_timeout_seconds=0.2, max_concurrency=1)
    )
    sent = asyncio.run(post_half(client.app, "stall"))
    start = sent[0]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(sent[1]["body"]) == {
        "error": "the request body must arrive within 0.2 s of its headers"
    }
    labels = {"route": "/v2/models/{name}/infer", "method": "POST", "status_class": "4xx"}
    assert metric_value(registry, "slipway_http_requests_total", **labels) == 1
    assert metric_value(registry, "slipway_inflight_requests") == 0
    assert client.post(INFER, json=infer_body(1)).status_code == 200  # the one slot is free


def test_a_client_that_hangs_up_mid_body_is_a_499_logged_in_one_line(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    client, registry = make_client()
    with caplog.at_level(logging.INFO, logger="slipway"):
        sent = asyncio.run(post_half(client.app, "disconnect"))
    assert sent[0]["status"] == 499
    labels = {"route": "/v2/models/{name}/infer", "method": "POST"}
    assert metric_value(registry, "slipway_http_requests_total", status_class="4xx", **labels) == 1
    assert metric_value(registry, "slipway_http_requests_total", status_class="5xx", **labels) == 0
    records = [r for r in caplog.records if r.name.startswith("slipway")]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "client closed the connection before sending the whole request body (499)")
    ]
    assert records[0].exc_info is None
    assert client.post(INFER, json=infer_body(1)).status_code == 200
