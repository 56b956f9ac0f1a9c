"""The settings of one dataset: its registered model name (the rule is :func:`slipway.config.model_name_for`)."""

from __future__ import annotations

from slipway.config import Settings, model_name_for
from slipway.data.spec import DatasetSpec


def settings_for_spec(settings: Settings, spec: DatasetSpec) -> Settings:
    """``settings`` with ``model_name`` set to the model that ``spec``'s dataset trains."""
    name = model_name_for(spec.name, settings.model_name, spec.model_name)
    if name == settings.model_name:
        return settings
    return settings.model_copy(update={"model_name": name})
