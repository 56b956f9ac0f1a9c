"""Running the app under uvicorn: workers, event loop, graceful shutdown, metrics folder.

Measured on 2 cores (docs/serving.md): uvloop + httptools, access log off. Worker processes
rebuild the app from the environment (:func:`app_from_environment`), which ``slipway serve``
fills from its :class:`~slipway.config.Settings` before starting uvicorn.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from slipway.config import Settings, load_settings, scoped_environ
from slipway.serving.app import create_app
from slipway.serving.connection import HeaderTimeoutProtocol
from slipway.serving.limits import LIMIT_ENV, ServingLimits, limits_from_env

# Kubernetes: terminationGracePeriodSeconds 30 = preStop sleep 10 + uvicorn's drain below + margin.
GRACEFUL_SHUTDOWN_SECONDS = 15
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def limits_to_env(limits: ServingLimits) -> dict[str, str]:
    """The limits as the environment variables that worker processes read."""
    return {env: str(getattr(limits, field)) for field, env in LIMIT_ENV.items()}


def app_from_environment():
    """Uvicorn factory for worker processes: settings, limits and metrics folder from the env."""
    env = os.environ
    limits = limits_from_env(env)
    return create_app(load_settings(), limits=limits, multiproc_dir=env.get(MULTIPROC_ENV))


def prepare_multiproc_dir(current: str | None, workers: int) -> str | None:
    """The metrics folder to use, emptied: the given one, a new one for several workers, or none.

    Files left by a previous run would be added to this run's counters, so they are removed.
    """
    if not current and workers <= 1:
        return None
    folder = Path(current) if current else Path(tempfile.mkdtemp(prefix="slipway-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return str(folder)


def log_config() -> dict:
    """Uvicorn's logging configuration plus the ``slipway`` logger (model load reasons)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["slipway"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _exit_zero(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _sigterm_exits_zero() -> Iterator[None]:
    """While serving, make SIGTERM end the process with status 0 once uvicorn has drained.

    Uvicorn (>= 0.29) catches SIGTERM, drains, then restores the handler it found and raises the
    signal again so that the embedding program decides. With the default handler that kills a
    single-worker server with -15 *after* a clean drain (the supervisor of ``--workers N`` exits
    0 on its own). Raising ``SystemExit(0)`` here also covers a SIGTERM that arrives before
    uvicorn installs its handlers, when nothing is in flight yet.
    """
    previous = signal.signal(signal.SIGTERM, _exit_zero)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_server(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    limits: ServingLimits,
    multiproc_dir: str | None,
) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get :data:`GRACEFUL_SHUTDOWN_SECONDS`.

    Sets the process environment while it serves, so that worker processes rebuild the same
    settings (``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus-client is imported by a
    worker, which happens in the worker after this), and restores it when the server stops.
    """
    import uvicorn

    changes = {**settings.as_env(), **limits_to_env(limits)}
    if multiproc_dir:
        changes[MULTIPROC_ENV] = multiproc_dir
    with scoped_environ(changes), _sigterm_exits_zero():
        uvicorn.run(
            "slipway.serving.server:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            # httptools with a header timeout (uvicorn has none; see connection.py)
            http=HeaderTimeoutProtocol,
            access_log=False,
            # no "server: uvicorn" on every answer: it names the software to scanners, and
            # each header is encoded on every response
            server_header=False,
            log_config=log_config(),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
