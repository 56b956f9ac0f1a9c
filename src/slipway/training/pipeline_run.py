"""The pipeline's MLflow run: what the search step creates, and what it logs when it finishes.

:func:`start_pipeline_run` creates the run (code, dataset, search settings; left RUNNING) and
:func:`finish_pipeline_run` logs the search's result to it (best params, CV and training metrics,
one child run per candidate, the model) and ends it. The one-task search
(:func:`slipway.training.train.train_candidate`) calls both; a sharded search calls the first in
its plan task and the second in its reduce task (:mod:`slipway.training.fanout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from slipway.config import Settings
from slipway.data import DatasetRef, DatasetSpec
from slipway.errors import ConfigError
from slipway.packaging import TRUSTED_TYPES
from slipway.params import SearchParams
from slipway.registry import mlflow_tracking_uri
from slipway.training.search import SearchResult, build_param_grid, describe_params
from slipway.training.shards import count_fits, shard_fits
from slipway.training.tracking import (
    PIPELINE_RUN_TAG,
    create_parent_run,
    ensure_experiment,
    log_candidate_runs,
    log_model,
    mlflow_client,
    mlflow_dataset,
)


@dataclass(frozen=True)
class Sharding:
    """How the search's fits are spread over Kubeflow tasks.

    Attributes:
        shards: the ``search_shards`` run parameter: 1 runs the whole search in one task.
        pipeline_run: the Kubeflow run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``); tagged on the
            MLflow run, and how the tasks of a sharded search find it. Required when
            ``shards > 1``; ``None`` outside a pipeline.
    """

    shards: int = 1
    pipeline_run: str | None = None


@dataclass
class TrainedCandidate:
    """What the search step produced.

    Attributes:
        run_id: the pipeline's MLflow run.
        model_uri: the logged model (``models:/m-…``).
        model: the refitted best Pipeline.
        search: the search's result.
        train_metrics: the model's metrics on the training split.
        candidate_runs: the child runs, one per candidate.
    """

    run_id: str
    model_uri: str
    model: Any
    search: SearchResult
    train_metrics: dict[str, float]
    candidate_runs: list[str]


def check_sharding(spec: DatasetSpec, params: SearchParams, shards: int) -> int:
    """Check the search's configuration and the shard count; return the number of CV fits.

    Raises:
        ConfigError: the scoring does not fit the task, a grid key is not a parameter of its
            estimator, ``shards`` is below 1 or above the fits, or ``shards > 1`` with the
            halving strategy.
    """
    params.scoring_for(spec.task)
    grid = build_param_grid(params.candidates, spec, params.seed)
    fits = count_fits(grid, params.cv_folds)
    if shards > 1 and params.strategy != "grid":
        raise ConfigError(
            f"search_shards={shards} with search.strategy {params.strategy!r}: only the grid "
            "strategy can be sharded; pass search_shards=1 or set search.strategy: grid"
        )
    shard_fits(fits, shards)
    return fits


def training_input(
    frame: pd.DataFrame, dataset: DatasetRef, spec: DatasetSpec, settings: Settings
) -> Any:
    """The table as the MLflow dataset entity the run logs as its input (schema and profile).

    Computed from the whole table, then the table may be released: the entity holds only its
    name, digest, source, schema and row count, not the rows.
    """
    return mlflow_dataset(
        frame, dataset, spec.name, settings.dvc_repo, spec.target
    )._to_mlflow_entity()


def start_pipeline_run(
    dataset_input: Any,
    dataset: DatasetRef,
    spec: DatasetSpec,
    params: SearchParams,
    settings: Settings,
    sharding: Sharding,
) -> str:
    """Create the pipeline's MLflow run (RUNNING): code, dataset and search settings.

    Args:
        dataset_input: the table as an MLflow dataset entity (:func:`training_input`).
        dataset: what identifies the dataset version.
        spec: the dataset's spec.
        params: the ``search`` section.
        settings: the configuration (MLflow, experiment, code version).
        sharding: the shard count and the Kubeflow run's id.

    Returns:
        The run's id.

    Raises:
        RemoteUnavailableError: MLflow cannot be reached.
    """
    experiment_id = ensure_experiment(
        settings.tracking_uri, settings.experiment_name, settings.artifact_root
    )
    tags = {
        "mlflow.source.git.commit": settings.git_commit,
        "slipway.git_commit": settings.git_commit,
        "slipway.dataset_version": dataset.version,
        "slipway.dataset_md5": dataset.md5,
        "slipway.dataset_path": dataset.path,
        "slipway.dataset_rev": dataset.rev,
        "slipway.model_name": settings.model_name,
    }
    if sharding.pipeline_run is not None:
        tags[PIPELINE_RUN_TAG] = sharding.pipeline_run
    grid = build_param_grid(params.candidates, spec, params.seed)
    logged = {
        "search.scoring": params.scoring_for(spec.task),
        "dataset.task": spec.task,
        "search.cv_folds": params.cv_folds,
        "search.seed": params.seed,
        "search.holdout_fraction": params.holdout_fraction,
        "search.strategy": params.strategy,
        "search.shards": sharding.shards,
    }
    if params.strategy == "grid":
        logged["search.fits"] = count_fits(grid, params.cv_folds)
    else:
        logged.update(
            {
                "search.halving.factor": params.halving.factor,
                "search.halving.min_resources": params.halving.min_resources,
            }
        )
    return create_parent_run(
        mlflow_client(settings.tracking_uri),
        experiment_id,
        f"train-{dataset.label}",
        tags,
        logged,
        dataset_input,
    )


def finish_pipeline_run(
    run_id: str,
    result: SearchResult,
    train_x: pd.DataFrame,
    train_metrics: dict[str, float],
    settings: Settings,
) -> TrainedCandidate:
    """Log the search's result to the run, one child run per candidate, the model; end the run.

    The run ends FINISHED, or FAILED if anything here raises.

    Args:
        run_id: the pipeline's run (:func:`start_pipeline_run`).
        result: the search's result, its best pipeline refitted.
        train_x: the training rows as the model takes them (their count, and the logged
            model's signature and input example).
        train_metrics: the model's metrics on those rows
            (:func:`~slipway.training.metrics.score_features`), scored by the caller before
            MLflow is imported (peak memory, docs/benchmarks.md).
        settings: the configuration (MLflow).

    Returns:
        What the search step produced.
    """
    import mlflow

    client = mlflow_client(settings.tracking_uri)
    scoring = result.scoring
    with mlflow_tracking_uri(settings.tracking_uri), mlflow.start_run(run_id=run_id) as run:
        children = log_candidate_runs(
            client,
            run.info.experiment_id,
            run_id,
            result.candidates,
            scoring,
            describe_params,
        )
        mlflow.log_params(
            {
                "search.candidates_tried": result.candidates_tried,
                **({"search.fits": result.fits} if result.strategy != "grid" else {}),
                **{f"best.{k}": v for k, v in result.best_params.items()},
            }
        )
        mlflow.log_metrics(
            {
                f"cv_{scoring}_mean": result.best_cv_score,
                f"cv_{scoring}_std": result.cv_std,
                "train_rows": float(len(train_x)),
                **{f"train_{k}": v for k, v in train_metrics.items()},
            }
        )
        model_uri = log_model(result.best_estimator, train_x, list(TRUSTED_TYPES))
    return TrainedCandidate(
        run_id, model_uri, result.best_estimator, result, train_metrics, children
    )
