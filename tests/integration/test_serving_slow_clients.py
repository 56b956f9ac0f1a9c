"""Slow and vanishing clients against a real `slipway serve` (one worker, 64 slots).

Slow body senders get 408 after the body timeout and free their concurrency slot; slow header
senders never take a slot and are disconnected after the header timeout.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.serving import ServingLimits
from tests.support.serving import infer_body, serve_process

pytestmark = pytest.mark.integration

SLOTS = ServingLimits().max_concurrency  # 64, the default
TIMEOUT = 1.0  # body and header timeouts of the server under test


def infer(base: str) -> tuple[int, float]:
    """POST one ordinary infer; return (status, seconds)."""
    body = json.dumps(infer_body(1)).encode()
    request = urllib.request.Request(
        f"{base}/v2/models/slipway/infer", data=body, headers={"content-type": "application/json"}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.monotonic() - started


def metrics(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        return response.read().decode()


def recv_all(conn: socket.socket) -> bytes:
    """Everything until the server closes the connection (or 10 s of silence)."""
    data = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    timeouts = ["--body-timeout-seconds", str(TIMEOUT), "--header-timeout-seconds", str(TIMEOUT)]
    with serve_process(tmp_path, *timeouts) as (_, base, port, log):
        deadline = time.monotonic() + 60
        while infer(base)[0] != 200:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield base, port, log


def test_slow_body_senders_get_408_and_free_their_slots(server: tuple[str, int, Path]) -> None:
    base, port, log = server
    body = json.dumps(infer_body(1)).encode()
    stalled = []
    for _ in range(SLOTS):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(
            b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        stalled.append(conn)
    time.sleep(0.2)
    assert infer(base)[0] == 429  # the stalled uploads hold every slot
    time.sleep(TIMEOUT)
    # still connected from the client's side; the server has answered them and freed the slots
    status, seconds = infer(base)
    assert status == 200
    assert seconds < 1.0
    replies = [recv_all(conn) for conn in stalled]  # the server closes each after its 408
    for conn in stalled:
        conn.close()
    assert {r.split(b"\r\n", 1)[0] for r in replies} == {b"HTTP/1.1 408 Request Timeout"}
    assert all(
        r.endswith(b'{"error":"the request body must arrive within 1 s of its headers"}')
        for r in replies
    )
    text = metrics(base)
    assert "slipway_inflight_requests 1.0" in text  # this scrape alone
    infer_4xx = (
        'slipway_http_requests_total{method="POST",route="/v2/models/{name}/infer",'
        'status_class="4xx"}'
    )
    assert f"{infer_4xx} {SLOTS + 1.0}" in text  # 64 x 408 and the 429
    assert "Traceback" not in log.read_text()


def test_slow_header_senders_hold_no_slot_and_are_disconnected(
    server: tuple[str, int, Path],
) -> None:
    base, port, log = server
    stalled = []
    for _ in range(SLOTS):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\nContent-Ty")
        stalled.append(conn)
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)  # connects, sends nothing
    time.sleep(0.2)
    status, seconds = infer(base)  # while every one of them is connected
    assert status == 200
    assert seconds < 1.0
    started = time.monotonic()
    replies = [recv_all(conn) for conn in [*stalled, idle]]
    closed_after = time.monotonic() - started
    for conn in [*stalled, idle]:
        conn.close()
    assert replies == [b""] * (SLOTS + 1)  # closed by the server, no answer
    assert closed_after < TIMEOUT + 2
    assert "Traceback" not in log.read_text()


def test_a_client_that_hangs_up_mid_upload_is_a_4xx_in_one_log_line(
    server: tuple[str, int, Path],
) -> None:
    base, port, log = server
    body = json.dumps(infer_body(1)).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(
        b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[: len(body) // 2]
    )
    time.sleep(0.2)
    conn.close()
    route = 'method="POST",route="/v2/models/{name}/infer"'
    gone = f'slipway_http_requests_total{{{route},status_class="4xx"}} 1.0'
    deadline = time.monotonic() + 5
    while gone not in (text := metrics(base)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone in text
    assert f'slipway_http_requests_total{{{route},status_class="5xx"}}' not in text
    assert infer(base)[0] == 200
    lines = log.read_text().splitlines()
    hung_up = [line for line in lines if "client closed the connection" in line]
    assert len(hung_up) == 1, lines
    assert "Traceback" not in log.read_text()
