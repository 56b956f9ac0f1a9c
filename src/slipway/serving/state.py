"""What the server's routes share, and the model load at start-up.

:class:`ServerState` lives on ``app.state.server``; :func:`lifespan` loads the model in a
background thread so that liveness answers at once and readiness turns 200 only once the package
is verified and deserialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from slipway.serving.errors import ModelNotFound, ModelNotReady
from slipway.serving.limits import ServingLimits
from slipway.serving.metrics import ServerMetrics
from slipway.serving.model import ModelState

__all__ = ["ServerState", "lifespan", "server_state"]


@dataclass
class ServerState:
    """What the routes share, kept on ``app.state.server``.

    Attributes:
        served: the model name this server answers for.
        model: the model being loaded or served.
        metrics: the server's Prometheus metrics.
        limits: backpressure limits.
        efs_root: where the model packages are.
        background_load: load the model in a thread at start-up.
        multiproc_dir: prometheus-client multiprocess folder, when several workers serve.
        loaded: set on the event loop when this worker's load has ended (ready or failed);
            infer requests that arrive while loading await it, holding no thread.
    """

    served: str
    model: ModelState
    metrics: ServerMetrics
    limits: ServingLimits
    efs_root: Path
    background_load: bool = True
    multiproc_dir: str | None = None
    loaded: asyncio.Event | None = field(default=None, repr=False)

    def check_name(self, requested: str) -> None:
        """Refuse a model name other than the served one.

        Raises:
            ModelNotFound: ``requested`` is not the served model.
        """
        if requested != self.served:
            raise ModelNotFound(f"this server serves model '{self.served}' only")

    def ready_model(self, requested: str) -> Any:
        """The loaded model, once ``requested`` names it and it is ready.

        Raises:
            ModelNotFound: ``requested`` is not the served model.
            ModelNotReady: the model is still loading or failed to load.
        """
        self.check_name(requested)
        if not self.model.ready:
            raise ModelNotReady(f"model '{self.served}' is not ready ({self.model.reason})")
        return self.model.model


def server_state(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``."""
    return request.app.state.server


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model at start-up (in a thread unless told not to); mark the worker dead at exit."""
    server: ServerState = app.state.server
    event = asyncio.Event()
    server.loaded = event
    if server.background_load:
        loop = asyncio.get_running_loop()

        def load_then_signal() -> None:
            try:
                server.model.load(server.efs_root, server.metrics, server.limits)
            finally:
                # RuntimeError: the loop closed first (shut down while loading); no one waits
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)

        threading.Thread(target=load_then_signal, name="model-load", daemon=True).start()
    else:
        server.model.load(server.efs_root, server.metrics, server.limits)
        event.set()
    server.metrics.start_flushing()
    serving = getattr(app, "serving", None)  # the infer short way's body deadlines
    if serving is not None:
        serving.deadlines.start()
    yield
    if serving is not None:
        serving.deadlines.stop()
    server.metrics.stop_flushing()
    server.metrics.flush()  # the last tallies, into the multiprocess files too
    if server.multiproc_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), server.multiproc_dir)
