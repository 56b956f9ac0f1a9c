"""MLflow tracking: one run per pipeline run, with params, metrics, dataset, code and model.

The run is created by the search step; later steps reopen it by id, so that everything a pipeline
run learned sits in one place.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from slipway.data import DatasetRef
from slipway.errors import ConfigError, RemoteUnavailableError

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
    """The dataset as an MLflow input: named ``<dataset>-<version>``, digested by its DVC hash.

    Its schema is MLflow's own inference run on :func:`schema_rows` of ``frame``, which gives
    the schema of the whole frame (``tests/unit/training/test_dataset_schema.py``) without
    MLflow's look at every value in Python (~20 s at 1,000,000 rows by 31 columns).
    """
    import mlflow.data

    dataset = mlflow.data.from_pandas(
        frame,
        source=f"{repo.rstrip('/')}/{ref.path}",
        targets=target,
        name=f"{name}-{ref.version}",
        digest=ref.md5[:10],
    )
    # a cached property: set, it is what the run's dataset input records
    dataset.schema = mlflow.data.from_pandas(schema_rows(frame)).schema
    return dataset


def schema_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` from which MLflow infers the schema it infers from all of them.

    MLflow's ``PandasDataset.schema`` takes each column's type from its dtype, or, for an
    object column, from its values' types; and marks a column required when none of its values
    is missing, which it finds by looking at every value in Python. A column's values share one
    type once the data checks passed (text for a categorical feature), so the first row and,
    for each column with a missing value, its first missing and its first present value give
    the same types and the same required flags, found by pandas in C.
    """
    rows = {0} if len(frame) else set()
    for j in range(frame.shape[1]):  # a column at a time: a million rows make 1 MB a column
        missing = frame.iloc[:, j].isna().to_numpy()
        if missing.any():
            rows.add(int(missing.argmax()))  # the first missing value
            rows.add(int(missing.argmin()))  # and the first value (its type), if any
    return frame.iloc[sorted(rows)]


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


#: The tag that ties an MLflow run to the Kubeflow run (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``) that
#: created it: the tasks of a sharded search find their parent run by it.
PIPELINE_RUN_TAG = "slipway.pipeline_run"
PARENT_RUN_TAG = "mlflow.parentRunId"
# MLflow refuses a log_batch of more than 1000 metrics+params+tags in one call (100 params).
_BATCH_PARAMS = 100


def create_parent_run(
    client: Any,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    dataset: Any,
) -> str:
    """Create the pipeline's run (left RUNNING) with its tags, params and training dataset.

    Three calls whatever the sizes: ``create_run``, one ``log_batch``, one ``log_inputs``. If
    one of the later two fails, the run is ended as FAILED before the error propagates.

    Args:
        client: an ``MlflowClient`` (:func:`mlflow_client`).
        experiment_id: the experiment (:func:`ensure_experiment`).
        run_name: the run's name.
        tags: tags of the run.
        params: params of the run (values are turned into strings by MLflow).
        dataset: an MLflow dataset entity (``mlflow_dataset(…)._to_mlflow_entity()``), logged
            with context ``training``.

    Returns:
        The new run's id.
    """
    from mlflow.entities import DatasetInput, InputTag, Param
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
    try:
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_inputs(
            run_id,
            [DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, "training")])],
        )
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def find_pipeline_run(client: Any, experiment_id: str, pipeline_run: str) -> str:
    """The one top-level MLflow run that the Kubeflow run ``pipeline_run`` created.

    Raises:
        ConfigError: there is none, or more than one (the message says which and what to do).
    """
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}'",
        max_results=10,
    )
    parents = [r.info.run_id for r in runs if PARENT_RUN_TAG not in r.data.tags]
    if len(parents) != 1:
        found = "no MLflow run" if not parents else f"{len(parents)} MLflow runs {parents}"
        raise ConfigError(
            f"{found} tagged {PIPELINE_RUN_TAG}={pipeline_run!r}; the search-plan task of that "
            "Kubeflow run creates exactly one: rerun the pipeline"
        )
    return parents[0]


def log_candidate_runs(
    client: Any,
    experiment_id: str,
    parent_run_id: str,
    candidates: list[Any],
    scoring: str,
    describe: Any,
) -> list[str]:
    """One child run per candidate under ``parent_run_id``, so MLflow's compare view lists them.

    Per candidate three calls: ``create_run`` (name and tags, ``mlflow.parentRunId`` among
    them), one ``log_batch`` (its params and every metric), ``set_terminated``; never a call per
    metric or param.

    Args:
        client: an ``MlflowClient``.
        experiment_id: the parent's experiment.
        parent_run_id: the pipeline's run.
        candidates: :class:`~slipway.training.shards.CandidateScore` of every candidate.
        scoring: the scorer name (metrics are ``cv_<scoring>_mean`` / ``_std``).
        describe: turns a candidate's raw params into readable ones
            (:func:`slipway.training.search.describe_params`).

    Returns:
        The child runs' ids, in candidate order.
    """
    from mlflow.entities import Metric, Param

    ids = []
    now = _now_ms()
    for c in candidates:
        params = {
            "candidate": c.candidate,
            "shard": ",".join(map(str, c.shards)),
            **describe(c.params),
        }
        if c.round is not None:
            params.update({"halving.round": c.round, "halving.rows": c.rows})
        metrics = {
            f"cv_{scoring}_mean": c.mean_score,
            f"cv_{scoring}_std": c.std_score,
            "mean_fit_time_seconds": c.fit_time,
            "rank": float(c.rank),
        }
        run = client.create_run(
            experiment_id,
            run_name=f"candidate-{c.candidate}",
            tags={PARENT_RUN_TAG: parent_run_id, "slipway.candidate": str(c.candidate)},
        )
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in list(params.items())[:_BATCH_PARAMS]],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        ids.append(run.info.run_id)
    return ids


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
