"""Uvicorn's httptools protocol with a header timeout: slow header senders are disconnected.

Uvicorn has ``timeout_keep_alive`` for idle connections between requests, but nothing for a
request whose headers trickle in: any byte cancels the keep-alive timer, and a connection that
sends nothing after connecting has no timer at all. Such connections hold no concurrency slot
(the ASGI app sees a request only once its headers are complete), but each holds a socket and a
file descriptor. This protocol closes a connection whose request headers are not complete
within ``header_timeout_seconds`` of connecting or of the request's first byte.

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

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        """A request's first byte: its headers have ``header_timeout`` seconds."""
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        """Headers complete in time: the body timeout (ASGI layer) takes over."""
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)
