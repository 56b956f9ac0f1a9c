"""Run the *compiled* pipeline YAML on this machine with ``kfp.local.SubprocessRunner``.

What runs here is the file the Kubeflow dashboard uploads: the YAML is loaded with
``load_component_from_file``, never rebuilt from the Python function. Each task is a subprocess
of the current environment, configured through the same ``SLIPWAY_*`` variables a pod gets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.errors import PipelineRunError


def run_compiled_pipeline(yaml_path: Path, settings: Settings, arguments: Mapping[str, Any]) -> str:
    """Execute the compiled pipeline and return its output (the MLflow run id).

    Args:
        yaml_path: the compiled pipeline (``pipelines/training_pipeline.yaml``).
        settings: handed to every task as ``SLIPWAY_*`` environment variables.
        arguments: run parameters, as a dashboard user would set them.

    Raises:
        PipelineRunError: a task failed; its log above says why.
    """
    from kfp import local
    from kfp.components import load_component_from_file

    # tasks start `python3 -m kfp.dsl.executor_main`: make that our interpreter, with our settings
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.update(settings.as_env())
    pipeline_root = settings.state_dir / "kfp"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    pipeline = load_component_from_file(str(yaml_path))
    try:
        task = pipeline(**arguments)
    except RuntimeError as e:
        raise PipelineRunError(f"pipeline {pipeline.name} failed: {e}") from e
    return task.output
