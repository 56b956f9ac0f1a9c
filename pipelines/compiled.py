"""The compiled pipeline file: write it, and check that the committed one is current.

This is the one place that turns ``pipelines/training_pipeline.py`` into the YAML the Kubeflow
dashboard uploads. The library never imports it: ``slipway compile`` and ``slipway run`` call
``python -m pipelines`` (see :mod:`pipelines.__main__`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.training_pipeline import COMPILED, compile_training_pipeline
from slipway.config import Settings
from slipway.errors import ConfigError
from slipway.params import load_params

__all__ = ["COMPILED", "compile_pipeline", "compiled_is_current", "ensure_compiled_current"]


def compile_pipeline(settings: Settings, output: Path | None = None) -> Path:
    """Compile ``slipway-training`` with the configured image and ``params.yaml`` defaults."""
    params = load_params(settings.params_file)
    return compile_training_pipeline(settings.component_image, params, output or COMPILED)


def compiled_is_current(settings: Settings) -> bool:
    """Whether recompiling now gives exactly the committed YAML."""
    if not COMPILED.is_file():
        return False
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_pipeline(settings, Path(tmp) / "training_pipeline.yaml")
        return fresh.read_text() == COMPILED.read_text()


def ensure_compiled_current(settings: Settings) -> None:
    """Refuse to run a stale compiled pipeline (what runs here must be what the dashboard gets).

    Raises:
        ConfigError: the YAML is missing or differs from a fresh compile.
    """
    if not compiled_is_current(settings):
        raise ConfigError(
            f"{COMPILED} is missing or out of date with the code or params.yaml; run "
            "`make compile-pipeline` (and commit the YAML)"
        )
