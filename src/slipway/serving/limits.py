"""What one server worker accepts: the one place the serving limits and their defaults live.

Kept free of heavy imports: ``slipway serve`` reads these defaults to build its options, and every
``slipway`` command imports that module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property


@dataclass(frozen=True)
class ServingLimits:
    """Backpressure: what one worker accepts.

    Attributes:
        max_batch_rows: rows per infer request; more is 413 (``rejected{reason="batch_size"}``).
        max_concurrency: infer requests in progress per worker; more is 429 at once.
        max_body_bytes: request body size (Content-Length and streamed bytes); more is 413.
        body_timeout_seconds: the whole infer body must arrive within this many seconds of its
            headers; else 408 and the connection is closed, freeing the concurrency slot.
        header_timeout_seconds: a connection must complete each request's headers within this
            many seconds of its first byte (or of connecting); else it is closed.
        psi_window: input rows kept per worker for PSI.
        psi_every: PSI is recomputed every this many infer requests...
        psi_min_seconds: ...but at most once per this many seconds (a bound under load only).
    """

    max_batch_rows: int = 1024
    max_concurrency: int = 64
    max_body_bytes: int = 2 * 1024 * 1024
    body_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 10.0
    psi_window: int = 1000
    psi_every: int = 100
    psi_min_seconds: float = 1.0

    @cached_property
    def body_digits(self) -> int:
        """The digits of ``max_body_bytes``: a Content-Length with fewer is within it."""
        return len(str(self.max_body_bytes))


# the environment variable of each limit that ``slipway serve`` reads (its option wins) and then
# sets for its uvicorn worker processes, which rebuild the limits from it
LIMIT_ENV = {
    "max_batch_rows": "SLIPWAY_SERVE_MAX_BATCH_ROWS",
    "max_concurrency": "SLIPWAY_SERVE_MAX_CONCURRENCY",
    "max_body_bytes": "SLIPWAY_SERVE_MAX_BODY_BYTES",
    "body_timeout_seconds": "SLIPWAY_SERVE_BODY_TIMEOUT_SECONDS",
    "header_timeout_seconds": "SLIPWAY_SERVE_HEADER_TIMEOUT_SECONDS",
}


def limits_from_env(env: Mapping[str, str]) -> ServingLimits:
    """The limits set in ``env`` (the variables of :data:`LIMIT_ENV`), defaults for the rest.

    Args:
        env: the process environment (worker processes receive the limits this way).

    Returns:
        The limits, each value parsed as its field's type (int or float).
    """
    types = {f.name: type(f.default) for f in fields(ServingLimits)}
    return ServingLimits(
        **{field: types[field](env[name]) for field, name in LIMIT_ENV.items() if name in env}
    )
