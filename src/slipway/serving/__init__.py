"""The model server: Open Inference Protocol (v2) REST around one verified model package.

The names below import on first use (PEP 562), so that ``slipway.serving.limits`` stays cheap to
import: every ``slipway`` command reads the serving defaults from it, and the app pulls in FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.serving.app import create_app
    from slipway.serving.limits import ServingLimits
    from slipway.serving.model import LoadedModel, LoadFailure, ModelState, load_model

_HOMES = {
    "LoadFailure": "slipway.serving.model",
    "LoadedModel": "slipway.serving.model",
    "ModelState": "slipway.serving.model",
    "ServingLimits": "slipway.serving.limits",
    "create_app": "slipway.serving.app",
    "load_model": "slipway.serving.model",
}
__all__ = ["LoadFailure", "LoadedModel", "ModelState", "ServingLimits", "create_app", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
