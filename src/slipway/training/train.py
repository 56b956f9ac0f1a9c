"""The search step as one call: split, search, and record it all in the pipeline's MLflow run.

With one shard (``search_shards=1``, the default) :func:`train_candidate` runs the whole search in
its task and creates the MLflow run. With more, the ``search-plan`` task has created the run and
the ``search-shard`` tasks have fitted the grid (:mod:`slipway.training.fanout`);
:func:`train_candidate` is then the reduce step: it merges the shards, refits the best and logs
it to that run. Either way the run gets the same params and metrics, one child run per
candidate, the dataset input and the model (:mod:`slipway.training.pipeline_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipway.config import Settings
from slipway.data import DatasetRef, DatasetSpec, load_frame, release_free_memory
from slipway.params import SearchParams
from slipway.training.fanout import reduce_search
from slipway.training.metrics import score_features
from slipway.training.pipeline_run import (
    Sharding,
    TrainedCandidate,
    check_sharding,
    finish_pipeline_run,
    start_pipeline_run,
    training_input,
)
from slipway.training.rows import training_features
from slipway.training.search import fit_search

__all__ = ["Sharding", "TrainedCandidate", "train_candidate"]


def train_candidate(
    csv_path: Path,
    dataset: DatasetRef,
    spec: DatasetSpec,
    search_params: SearchParams,
    settings: Settings,
    sharding: Sharding | None = None,
) -> TrainedCandidate:
    """Search the training split and log params, metrics, dataset, code and model to MLflow.

    The holdout split is set aside here with the same seed that evaluate uses, so the search never
    sees a holdout row.

    Args:
        csv_path: the dataset version's CSV or Parquet file (pull-data's artifact).
        dataset: what identifies that dataset version.
        spec: the dataset's spec (task, target, feature kinds).
        search_params: the ``search`` section (grids, folds, seed, holdout fraction, strategy).
        settings: the configuration (MLflow URI, experiment, model name, code version).
        sharding: ``None`` or one shard: search here and create the run; more: merge the
            shards' results into the run the plan task created.

    Returns:
        The run's id, the logged model's URI, the model and the search's result.

    Raises:
        ConfigError: the scoring does not fit the task, a grid key is not a parameter of its
            estimator, or the shard count does not fit the grid (before any MLflow run starts);
            a shard's result is missing.
        RemoteUnavailableError: MLflow cannot be reached.
    """
    sharding = sharding or Sharding()
    check_sharding(spec, search_params, sharding.shards)
    if sharding.shards > 1:
        return reduce_search(csv_path, spec, search_params, settings, sharding)
    # MLflow, its store and skops are imported only once the fit and the training metrics are
    # done and their memory released: held during the fit, they add ~80 MB to its peak
    x, y = training_features(csv_path, spec, search_params)
    result = fit_search(x, y, spec, search_params)
    train_metrics = score_features(result.best_estimator, x, y, spec)
    release_free_memory()  # the folds' and the scoring's pages
    dataset_input = training_dataset_input(csv_path, dataset, spec, settings)
    run_id = start_pipeline_run(dataset_input, dataset, spec, search_params, settings, sharding)
    return finish_pipeline_run(run_id, result, x, train_metrics, settings)


def training_dataset_input(
    csv_path: Path, dataset: DatasetRef, spec: DatasetSpec, settings: Settings
) -> Any:
    """The whole table as the MLflow input the run logs, read again after the fit.

    The first read kept only the training rows; reading the file again (~1 s at 1,000,000
    rows) gives :func:`~slipway.training.pipeline_run.training_input` the same table, while
    the fit ran without MLflow imported. The table is released before this returns.
    """
    frame = load_frame(csv_path, spec)
    dataset_input = training_input(frame, dataset, spec, settings)
    del frame
    release_free_memory()
    return dataset_input
