"""Uvicorn's httptools protocol with a header timeout: slow header senders are disconnected.

Uvicorn has ``timeout_keep_alive`` for idle connections between requests, but nothing for a
request whose headers trickle in: any byte cancels the keep-alive timer, and a connection that
sends nothing after connecting has no timer at all. Such connections hold no concurrency slot
(the ASGI app sees a request only once its headers are complete), but each holds a socket and a
file descriptor. This protocol closes a connection whose request headers are not complete
within ``header_timeout_seconds`` of connecting or of the request's first byte.

The clock is one deadline per connection and a timer that is re-armed lazily: starting a
request's headers only moves the deadline, and the timer, when it fires, either closes the
connection, waits for the new deadline, or lapses (no headers in progress). Creating and
cancelling a loop timer for every request cost ~10 µs of CPU a request (measured with wrk at
concurrency 8, ``bench.serving``); a keep-alive connection now arms about one timer per
``header_timeout_seconds``.

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


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes connections whose headers take too long."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = _header_timeout()
        self._header_timer: Any = None
        self._header_deadline: float | None = None  # loop time; None: no headers in progress

    def _arm_header_timer(self) -> None:
        self._header_deadline = self.loop.time() + self.header_timeout
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._header_deadline, self._check_headers)

    def _check_headers(self) -> None:
        self._header_timer = None
        deadline = self._header_deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # a later request's headers: wait for their deadline
            self._header_timer = self.loop.call_at(deadline, self._check_headers)
        elif not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm_header_timer()

    # the two callbacks below run on every request: the timer arming is written out, and the
    # base class is named rather than found by super()

    def on_message_begin(self) -> None:
        """A request's first byte: its headers have ``header_timeout`` seconds."""
        HttpToolsProtocol.on_message_begin(self)
        self._header_deadline = deadline = self.loop.time() + self.header_timeout
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(deadline, self._check_headers)

    def on_headers_complete(self) -> None:
        """Headers complete in time: the body timeout (ASGI layer) takes over."""
        self._header_deadline = None  # the timer lapses when it fires
        HttpToolsProtocol.on_headers_complete(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._header_deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
