"""The sharded grid search as three pipeline steps: plan, shard, reduce.

``search_shards > 1`` spreads the grid's (candidate, fold) fits over Kubeflow tasks:

1. :func:`plan_search` (task ``search-plan``) checks the shard count against the grid and creates
   the pipeline's MLflow run, tagged with the Kubeflow run's id, and returns the shard indices
   the ``dsl.ParallelFor`` iterates over;
2. :func:`run_shard` (task ``search-shard``, one per index) fits its slice
   (:func:`slipway.training.shards.fit_shard`) and writes its fold scores to the run's artifacts,
   ``shards/shard-<i>.json``;
3. :func:`reduce_search` (task ``search``, after all shards) requires exactly one artifact per
   shard, merges them (:func:`~slipway.training.shards.merge_shards`), refits the best candidate
   on the whole training split and logs it like a one-task search.

The tasks find the run by :data:`~slipway.training.tracking.PIPELINE_RUN_TAG`, so the fan-in is
an artifact listing, not a ``dsl.Collected`` (see docs/pipeline.md for why). Any failure once
the run exists ends it as FAILED.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from slipway.config import Settings
from slipway.data import DatasetRef, DatasetSpec, load_frame
from slipway.errors import ConfigError, ShardFailedError
from slipway.params import SearchParams
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
from slipway.training.search import (
    SearchResult,
    build_param_grid,
    build_pipeline,
    describe_params,
    make_cv,
)
from slipway.training.shards import FoldScore, count_fits, fit_shard, merge_shards, shard_fits
from slipway.training.tracking import ensure_experiment, find_pipeline_run, mlflow_client

SHARDS_ARTIFACT_DIR = "shards"

# defined with the other errors (slipway.errors); importable from here and from slipway.training
__all__ = [
    "SHARDS_ARTIFACT_DIR",
    "ShardFailedError",
    "load_shard_results",
    "plan_search",
    "reduce_search",
    "run_shard",
    "shard_candidates",
]


def plan_search(
    csv_path: Path,
    dataset: DatasetRef,
    spec: DatasetSpec,
    params: SearchParams,
    settings: Settings,
    sharding: Sharding,
) -> list[int]:
    """Check the shard count, create the pipeline's MLflow run, and return the shard indices.

    Returns:
        ``[0, 1, …, shards-1]``: the items of the ``dsl.ParallelFor`` of shard tasks.

    Raises:
        ConfigError: the shard count is below 1 or above the grid's fits, the strategy is not
            ``grid``, no Kubeflow run id is given, or the scoring or a grid key does not fit
            (all before any MLflow run is created).
        RemoteUnavailableError: MLflow cannot be reached.
    """
    check_sharding(spec, params, sharding.shards)
    if not sharding.pipeline_run:
        raise ConfigError(
            f"search_shards={sharding.shards} needs the Kubeflow run's id to tie the shard tasks "
            "to one MLflow run; run the compiled pipeline (it passes it), or search_shards=1"
        )
    dataset_input = training_input(load_frame(csv_path, spec), dataset, spec, settings)
    start_pipeline_run(dataset_input, dataset, spec, params, settings, sharding)
    return list(range(sharding.shards))


def shard_candidates(spec: DatasetSpec, params: SearchParams, shard: int, shards: int) -> list[int]:
    """The candidates (``ParameterGrid`` indices) whose folds shard ``shard`` of ``shards`` fits."""
    grid = build_param_grid(params.candidates, spec, params.seed)
    fits = shard_fits(count_fits(grid, params.cv_folds), shards)[shard]
    return sorted({fit // params.cv_folds for fit in fits})


def run_shard(
    csv_path: Path,
    spec: DatasetSpec,
    params: SearchParams,
    settings: Settings,
    sharding: Sharding,
    shard: int,
) -> list[FoldScore]:
    """Fit shard ``shard``'s slice of the grid and write its scores to the pipeline's run.

    The artifact ``shards/shard-<shard>.json`` is written whole, so a retried shard replaces it.

    Raises:
        ShardFailedError: fitting failed; names the shard and its candidates, and the run is
            ended as FAILED (the reduce step reopens it if a retry succeeds).
        ConfigError: the run of this Kubeflow run cannot be found, or ``shard`` is out of range.
    """
    client = mlflow_client(settings.tracking_uri)
    run_id = _parent_run(client, settings, sharding)
    candidates = shard_candidates(spec, params, shard, sharding.shards)
    try:
        x, y = training_features(csv_path, spec, params)
        scores = fit_shard(
            build_pipeline(spec, params.seed),
            build_param_grid(params.candidates, spec, params.seed),
            x,
            y,
            make_cv(spec, params),
            _scorer(spec, params),
            shard,
            sharding.shards,
        )
    except Exception as e:
        client.set_tag(run_id, "slipway.failed_shard", str(shard))
        client.set_terminated(run_id, "FAILED")
        raise ShardFailedError(
            f"shard {shard} of {sharding.shards} failed fitting candidates {candidates} "
            f"(ParameterGrid indices): {type(e).__name__}: {e}; fix the grid of those candidates "
            "or rerun"
        ) from e
    body = {"shard": shard, "shards": sharding.shards, "scores": [s.to_dict() for s in scores]}
    client.log_text(run_id, json.dumps(body), f"{SHARDS_ARTIFACT_DIR}/shard-{shard}.json")
    return scores


def reduce_search(
    csv_path: Path,
    spec: DatasetSpec,
    params: SearchParams,
    settings: Settings,
    sharding: Sharding,
) -> TrainedCandidate:
    """Merge every shard's scores, refit the best on the training split, and log it all.

    Raises:
        ConfigError: a shard's artifact is missing or the shards do not cover the grid exactly
            once (the run is ended as FAILED); the run cannot be found.
    """
    from sklearn.base import clone

    client = mlflow_client(settings.tracking_uri)
    run_id = _parent_run(client, settings, sharding)
    try:
        results = load_shard_results(client, run_id, sharding.shards)
        grid = build_param_grid(params.candidates, spec, params.seed)
        merged = merge_shards(grid, params.cv_folds, results)
        x, y = training_features(csv_path, spec, params)
        best = merged.best
        # as GridSearchCV refits: a clone of the template with (clones of) the best params
        model = clone(build_pipeline(spec, params.seed)).set_params(
            **{k: clone(v, safe=False) for k, v in best.params.items()}
        )
        model.fit(x, y)
        train_metrics = score_features(model, x, y, spec)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    result = SearchResult(
        best_estimator=model,
        best_params=describe_params(best.params),
        best_cv_score=best.mean_score,
        cv_std=best.std_score,
        candidates_tried=len(merged.candidates),
        scoring=params.scoring_for(spec.task),
        strategy="grid",
        fits=len(merged.candidates) * params.cv_folds,
        candidates=merged.candidates,
        shards=sharding.shards,
    )
    return finish_pipeline_run(run_id, result, x, train_metrics, settings)


def load_shard_results(client: object, run_id: str, shards: int) -> list[list[FoldScore]]:
    """Read ``shards/shard-<i>.json`` of every shard from the run's artifacts.

    Raises:
        ConfigError: a shard's artifact is missing; the message names the shards.
    """
    listed = {Path(a.path).name for a in client.list_artifacts(run_id, SHARDS_ARTIFACT_DIR)}
    expected = [f"shard-{i}.json" for i in range(shards)]
    missing = [i for i, name in enumerate(expected) if name not in listed]
    if missing:
        raise ConfigError(
            f"MLflow run {run_id} lacks the results of shard(s) {missing} of {shards} "
            f"({SHARDS_ARTIFACT_DIR}/shard-<i>.json); every search-shard task must succeed "
            "before the reduce: rerun the pipeline"
        )
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in expected:
            local = client.download_artifacts(run_id, f"{SHARDS_ARTIFACT_DIR}/{name}", tmp)
            body = json.loads(Path(local).read_text())
            out.append([FoldScore(**s) for s in body["scores"]])
    return out


def _parent_run(client: object, settings: Settings, sharding: Sharding) -> str:
    experiment_id = ensure_experiment(
        settings.tracking_uri, settings.experiment_name, settings.artifact_root
    )
    if not sharding.pipeline_run:
        raise ConfigError(
            f"search_shards={sharding.shards} needs the Kubeflow run's id to find its MLflow run; "
            "run the compiled pipeline (it passes it), or search_shards=1"
        )
    return find_pipeline_run(client, experiment_id, sharding.pipeline_run)


def _scorer(spec: DatasetSpec, params: SearchParams) -> object:
    from slipway.training.estimators import make_scorer_for

    return make_scorer_for(params.scoring_for(spec.task), spec)
