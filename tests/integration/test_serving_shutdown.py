"""SIGTERM on a real `slipway serve`: 20 requests in flight finish with 200, the process exits 0.

Run with the default single worker (as the Deployment and the image's ENTRYPOINT run it) and
with two workers (uvicorn's supervisor process).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from slipway.serving.server import GRACEFUL_SHUTDOWN_SECONDS
from tests.support.serving import VERSION, infer_body, serve_process

pytestmark = pytest.mark.integration

IN_FLIGHT = 20


def read_reply(conn: socket.socket) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


@pytest.mark.parametrize("workers", [None, 2], ids=["default-one-worker", "two-workers"])
def test_sigterm_drains_in_flight_requests_and_exits_zero(
    tmp_path: Path, workers: int | None
) -> None:
    options = ["--workers", str(workers)] if workers else []
    with serve_process(tmp_path, *options) as (proc, _, port, log):
        deadline = time.monotonic() + 60
        while True:  # every worker loaded: a full infer answers 200 on fresh connections
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            body = json.dumps(infer_body(1)).encode()
            conn.sendall(
                b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            ok = read_reply(conn).startswith(b"HTTP/1.1 200")
            conn.close()
            if ok:
                break
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.0)  # the second worker too, where there is one

        # 20 requests in flight: headers and the first 40 body bytes sent, the rest after SIGTERM
        bodies = [json.dumps(infer_body(1, start=i)).encode() for i in range(IN_FLIGHT)]
        conns = []
        for body in bodies:
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.sendall(
                b"POST /v2/models/slipway/infer HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:40]
            )
            conns.append(conn)
        time.sleep(0.5)
        stopped = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # what the kubelet sends to PID 1
        time.sleep(1.0)
        for conn, body in zip(conns, bodies, strict=True):
            conn.sendall(body[40:])
        replies = [read_reply(conn) for conn in conns]
        for conn in conns:
            conn.close()
        assert [r[:12] for r in replies] == [b"HTTP/1.1 200"] * IN_FLIGHT, replies
        assert all(b'"model_version":"' + VERSION.encode() in r for r in replies)
        assert proc.wait(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5) == 0, log.read_text()[-2000:]
        assert time.monotonic() - stopped < GRACEFUL_SHUTDOWN_SECONDS + 5
    assert "Traceback" not in log.read_text()
