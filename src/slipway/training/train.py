"""The search step as one call: split, grid search, and record it all in a new MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.data import DatasetRef, DatasetSpec, load_frame, split_dataset
from slipway.packaging import TRUSTED_TYPES
from slipway.params import SearchParams
from slipway.registry import mlflow_tracking_uri
from slipway.training.features import feature_frame
from slipway.training.metrics import score_model
from slipway.training.search import SearchResult, fit_grid_search
from slipway.training.tracking import (
    ensure_experiment,
    log_model,
    mlflow_dataset,
)


@dataclass
class TrainedCandidate:
    """What the search step produced.

    Attributes:
        run_id: the new MLflow run.
        model_uri: the logged model (``models:/m-…``).
        model: the refitted best Pipeline.
        search: the grid search's result.
        train_metrics: the model's metrics on the training split.
    """

    run_id: str
    model_uri: str
    model: Any
    search: SearchResult
    train_metrics: dict[str, float]


def train_candidate(
    csv_path: Path,
    dataset: DatasetRef,
    spec: DatasetSpec,
    search_params: SearchParams,
    settings: Settings,
) -> TrainedCandidate:
    """Grid-search the training split and log params, metrics, dataset, code and model to MLflow.

    The holdout split is set aside here with the same seed that evaluate uses, so the search never
    sees a holdout row.

    Args:
        csv_path: the dataset version's CSV or Parquet file (pull-data's artifact).
        dataset: what identifies that dataset version.
        spec: the dataset's spec (task, target, feature kinds).
        search_params: the ``search`` section (grids, folds, seed, holdout fraction).
        settings: the configuration (MLflow URI, experiment, model name, code version).

    Returns:
        The new run's id, the logged model's URI, the model and the search's result.

    Raises:
        ConfigError: the scoring does not fit the task, or a grid key is not a parameter of its
            estimator (before any MLflow run starts).
        RemoteUnavailableError: MLflow cannot be reached.
    """
    import mlflow

    scoring = search_params.scoring_for(spec.task)
    frame = load_frame(csv_path, spec)
    target = spec.target
    train, _ = split_dataset(frame, search_params.holdout_fraction, search_params.seed, target)
    result = fit_grid_search(train, spec, search_params)
    train_metrics = score_model(result.best_estimator, train, spec)

    experiment_id = ensure_experiment(
        settings.tracking_uri, settings.experiment_name, settings.artifact_root
    )
    with (
        mlflow_tracking_uri(settings.tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{dataset.label}") as run,
    ):
        mlflow.set_tags(
            {
                "mlflow.source.git.commit": settings.git_commit,
                "slipway.git_commit": settings.git_commit,
                "slipway.dataset_version": dataset.version,
                "slipway.dataset_md5": dataset.md5,
                "slipway.dataset_path": dataset.path,
                "slipway.dataset_rev": dataset.rev,
                "slipway.model_name": settings.model_name,
            }
        )
        mlflow.log_params(
            {
                "search.scoring": scoring,
                "dataset.task": spec.task,
                "search.cv_folds": search_params.cv_folds,
                "search.seed": search_params.seed,
                "search.holdout_fraction": search_params.holdout_fraction,
                "search.candidates_tried": result.candidates_tried,
                **{f"best.{k}": v for k, v in result.best_params.items()},
            }
        )
        mlflow.log_metrics(
            {
                f"cv_{scoring}_mean": result.best_cv_score,
                f"cv_{scoring}_std": result.cv_std,
                "train_rows": float(len(train)),
                **{f"train_{k}": v for k, v in train_metrics.items()},
            }
        )
        mlflow.log_input(
            mlflow_dataset(frame, dataset, spec.name, settings.dvc_repo, target),
            context="training",
        )
        model_uri = log_model(
            result.best_estimator, feature_frame(train, spec), list(TRUSTED_TYPES)
        )
    return TrainedCandidate(
        run.info.run_id, model_uri, result.best_estimator, result, train_metrics
    )
