"""Uvicorn's httptools protocol with a header timeout: slow header senders are disconnected.

Uvicorn has ``timeout_keep_alive`` for idle connections between requests, but nothing for a
request whose headers trickle in: any byte cancels the keep-alive timer, and a connection that
sends nothing after connecting has no timer at all. Such connections hold no concurrency slot
(the ASGI app sees a request only once its headers are complete), but each holds a socket and a
file descriptor. This protocol closes a connection whose request headers are not complete
within ``header_timeout_seconds`` of connecting or of the request's first byte.

No callback runs for a request of its own: a request's headers are in progress when uvicorn has
made its scope (``on_message_begin``, at its first byte) but no request cycle from it yet
(``on_headers_complete``). The connection's timer looks every :data:`TICKS`-th of the timeout;
a request seen in progress at ``TICKS + 1`` looks in a row has had at least the timeout, and
the connection is closed: between ``header_timeout_seconds`` and one tick later (as the body
deadlines of :mod:`slipway.serving.middleware` do). A connection that has sent nothing yet
counts from its connection. Overriding the two callbacks to move a deadline cost ~3,600
instructions a request (``bench.instructions``, a protocol without them), and an earlier timer
made and cancelled per request ~10 µs of CPU; this costs one timer callback a tick a
connection.

The body timeout is in the ASGI layer instead (:mod:`slipway.serving.middleware`), where it can
answer 408 and free the slot.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from slipway.serving.limits import limits_from_env


@functools.cache
def _header_timeout() -> float:
    # read once per process: ``slipway serve`` sets the variable before uvicorn starts, and
    # spawned workers inherit it
    return limits_from_env(os.environ).header_timeout_seconds


#: looks at a connection per header timeout
TICKS = 8
_CONNECTED = object()  # what is "in progress" on a connection that has sent nothing yet


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes connections whose headers take too long."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = _header_timeout()
        self._tick = self.header_timeout / TICKS
        self._header_timer: Any = None
        self._seen: object = None  # the request in progress at the last look (its scope)
        self._looks = 0  # how many looks in a row have seen it

    def connection_made(self, transport: Any) -> None:
        """Start looking: the connection itself counts as the first look at nothing sent."""
        super().connection_made(transport)
        self._seen, self._looks = _CONNECTED, 1
        self._header_timer = self.loop.call_later(self._tick, self._check_headers)

    def _in_progress(self) -> object:
        """The request whose headers are in progress (its scope), or ``None``."""
        scope, cycle = self.scope, self.cycle
        if scope is None:
            return _CONNECTED if cycle is None else None
        return scope if cycle is None or cycle.scope is not scope else None

    def _check_headers(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:  # closed, upgraded
            return
        pending = self._in_progress()
        if pending is None or pending is not self._seen:
            self._seen, self._looks = pending, 1
        else:
            self._looks += 1
            if self._looks > TICKS:  # seen TICKS ticks apart: the timeout has passed
                transport.close()
                return
        self._header_timer = self.loop.call_later(self._tick, self._check_headers)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
