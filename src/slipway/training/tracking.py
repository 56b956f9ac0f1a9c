"""MLflow tracking: one run per pipeline run, with params, metrics, dataset, code and model.

The run is created by the search step; later steps reopen it by id, so that everything a pipeline
run learned sits in one place.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from slipway.data import DatasetRef
from slipway.errors import RemoteUnavailableError

MODEL_ARTIFACT = "model"


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``, which is also its registry; no global state.

    Args:
        tracking_uri: MLflow tracking (and registry) URI, ``settings.tracking_uri``.

    Returns:
        The client.
    """
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, experiment_name: str, artifact_root: str | None) -> str:
    """Make sure the experiment exists at ``tracking_uri`` and return its id.

    Args:
        tracking_uri: MLflow tracking URI, ``settings.tracking_uri``.
        experiment_name: the experiment, ``settings.experiment_name``.
        artifact_root: artifact location for a *new* experiment when the tracking URI is a local
            database; ``None`` lets a tracking server choose (e.g. its S3 artifacts destination).

    Returns:
        The experiment id.

    Raises:
        RemoteUnavailableError: the tracking server cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow_client(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        location = artifact_root if tracking_uri.startswith(("sqlite:", "file:", "/")) else None
        try:
            return client.create_experiment(experiment_name, artifact_location=location)
        except MlflowException:
            # created concurrently by another task
            return client.get_experiment_by_name(experiment_name).experiment_id
    except MlflowException as e:
        raise RemoteUnavailableError(
            f"cannot reach MLflow at {tracking_uri!r}: {e}; check SLIPWAY_TRACKING_URI"
        ) from e


def mlflow_dataset(frame: pd.DataFrame, ref: DatasetRef, name: str, repo: str, target: str):
    """The dataset as an MLflow input: named ``<dataset>-<version>``, digested by its DVC hash."""
    import mlflow.data

    return mlflow.data.from_pandas(
        frame,
        source=f"{repo.rstrip('/')}/{ref.path}",
        targets=target,
        name=f"{name}-{ref.version}",
        digest=ref.md5[:10],
    )


def pip_requirements() -> list[str]:
    """Explicit requirements: inferring them costs ~13 s per log_model (docs/benchmarks.md)."""
    from importlib.metadata import version

    return [
        f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "skops", "numpy", "pandas", "scipy")
    ]


def log_model(model: Any, sample: pd.DataFrame, trusted_types: list[str]) -> str:
    """Log ``model`` (skops format) with signature and input example to the active run.

    The signature's output is what the model answers: class probabilities (the positive class's
    for two classes) for a classifier, the value for a regressor.

    Returns:
        The logged model's URI (``models:/m-…``), which the registry registers.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = sample.head(3)
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(example)
        output = proba[:, 1] if proba.shape[1] == 2 else proba
    else:
        output = model.predict(example)
    signature = infer_signature(example, output)
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted_types,
        pip_requirements=pip_requirements(),
        signature=signature,
        input_example=example,
    )
    return info.model_uri


def run_summary(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """Params, metrics and tags of a run, as plain dicts.

    Args:
        tracking_uri: MLflow tracking URI.
        run_id: the run.

    Returns:
        ``run_id``, ``params``, ``metrics``, ``tags`` (without ``mlflow.*``), ``status`` and the
        names of the run's dataset ``inputs``.
    """
    run = mlflow_client(tracking_uri).get_run(run_id)
    return {
        "run_id": run_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "status": run.info.status,
        "inputs": [d.dataset.name for d in (run.inputs.dataset_inputs if run.inputs else [])],
    }
