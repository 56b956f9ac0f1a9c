"""The header timeout: uvicorn's protocol closes connections whose headers take too long.

Driven on a real event loop through a transport that keeps what the server writes, with a
header timeout of 0.4 s (the looks are 0.05 s apart): headers that complete in time are never
cut, slow ones are closed between the timeout and one look later, and a connection that sends
nothing counts from its connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import uvicorn
from uvicorn.server import ServerState

from slipway.serving import connection
from slipway.serving.connection import TICKS, HeaderTimeoutProtocol

TIMEOUT = 0.4
REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed_at: float | None = None
        self.protocol: object = None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def get_protocol(self) -> object:
        return self.protocol

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _connect() -> tuple[HeaderTimeoutProtocol, _Transport, float]:
    config = uvicorn.Config(_app, access_log=False, log_level="warning", lifespan="off")
    config.load()
    protocol = HeaderTimeoutProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return protocol, transport, time.monotonic()


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch) -> None:
    monkeypatch.setattr(connection, "_header_timeout", lambda: TIMEOUT)


def test_a_stalled_request_is_closed_between_the_timeout_and_one_look_later() -> None:
    async def scenario() -> float:
        protocol, transport, _ = _connect()
        await asyncio.sleep(0.13)
        started = time.monotonic()
        protocol.data_received(REQUEST[:20])  # the first bytes, then nothing
        while transport.closed_at is None and time.monotonic() - started < 3:
            await asyncio.sleep(0.01)
        return transport.closed_at - started

    closed_after = asyncio.run(scenario())
    assert TIMEOUT <= closed_after < TIMEOUT + TIMEOUT / TICKS + 0.05


def test_a_connection_that_sends_nothing_counts_from_its_connection() -> None:
    async def scenario() -> float:
        _, transport, connected = _connect()
        while transport.closed_at is None and time.monotonic() - connected < 3:
            await asyncio.sleep(0.01)
        return transport.closed_at - connected

    closed_after = asyncio.run(scenario())
    assert TIMEOUT - 0.01 <= closed_after < TIMEOUT + TIMEOUT / TICKS + 0.05


def test_headers_that_trickle_in_within_the_timeout_are_answered_and_each_request_has_its_own() -> (
    None
):
    async def scenario() -> tuple[bool, int]:
        protocol, transport, _ = _connect()
        for _ in range(3):  # three requests on one connection, each 0.3 s of headers
            for i in range(0, len(REQUEST), 6):
                protocol.data_received(REQUEST[i : i + 6])
                await asyncio.sleep(0.3 / (len(REQUEST) / 6))
            await asyncio.sleep(0.02)  # the answer
        await asyncio.sleep(0.2)  # idle between requests: the keep-alive timeout's business
        answers, closed = transport.written.count(b"HTTP/1.1 200 OK"), transport.is_closing()
        protocol.connection_lost(None)
        return closed, answers

    assert asyncio.run(scenario()) == (False, 3)


def test_the_timer_ends_with_the_connection() -> None:
    async def scenario() -> object:
        protocol, _, _ = _connect()
        protocol.connection_lost(None)
        return protocol._header_timer

    assert asyncio.run(scenario()) is None
