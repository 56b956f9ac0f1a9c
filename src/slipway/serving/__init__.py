"""The model server: Open Inference Protocol (v2) REST around one verified model package."""

from slipway.serving.app import ServingLimits, create_app
from slipway.serving.model import LoadedModel, LoadFailure, ModelState, load_model

__all__ = ["LoadFailure", "LoadedModel", "ModelState", "ServingLimits", "create_app", "load_model"]
