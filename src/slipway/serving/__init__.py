"""The model server: Open Inference Protocol (v2) REST around one verified model package.

The names below import on first use (PEP 562), so that ``slipway.serving.limits`` stays cheap to
import: every ``slipway`` command reads the serving defaults from it, and the app pulls in FastAPI.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LoadFailure": "model",
        "LoadedModel": "model",
        "ModelState": "model",
        "ServingLimits": "limits",
        "create_app": "app",
        "load_model": "model",
    },
)
