"""search: the grid search in one task, or the reduce of a sharded one; one MLflow run."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Metrics, Model, Output


def search(
    dataset: Input[Dataset],
    data_params: dict,
    search_params: dict,
    search_shards: int,
    pipeline_run: str,
    model: Output[Model],
    cv_metrics: Output[Metrics],
) -> NamedTuple("SearchOutputs", [("run_id", str), ("model_uri", str)]):
    """One shard: search the training split here. More: merge the search-shard tasks' results.

    Either way the best is refitted on the training split, logged to the pipeline's MLflow run
    (with one child run per candidate) and saved as ``model``. The dataset's spec comes from the
    artifact's metadata; ``data_params`` is not read (the spec names the target).
    """
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    from slipway.data import return_arrow_memory_at_once

    return_arrow_memory_at_once()  # before pandas loads pyarrow (docs/benchmarks.md)

    from collections import namedtuple
    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import DatasetRef, spec_from_metadata
    from slipway.orchestration import prepare_exit, reporting_step
    from slipway.params import SearchParams
    from slipway.training import Sharding, train_candidate

    settings = settings_for(load_settings(), dataset.metadata)
    with reporting_step("search", settings.pushgateway_url, settings.model_name, dataset.metadata):
        params = SearchParams.model_validate(search_params)
        ref = DatasetRef.from_metadata(dataset.metadata)
        spec = spec_from_metadata(dataset.metadata)
        sharding = Sharding(shards=search_shards, pipeline_run=pipeline_run)
        trained = train_candidate(Path(dataset.path), ref, spec, params, settings, sharding)
        import skops.io as sio  # after the fit, which runs without it (docs/benchmarks.md)

        Path(model.path).write_bytes(sio.dumps(trained.model))
        model.metadata.update(
            {"framework": "scikit-learn", "format": "skops", "mlflow_run_id": trained.run_id}
        )
        cv_metrics.log_metric(f"cv_{trained.search.scoring}", trained.search.best_cv_score)
        cv_metrics.log_metric(f"cv_{trained.search.scoring}_std", trained.search.cv_std)
        print(
            f"best {trained.search.best_params} cv {trained.search.best_cv_score:.4f} "
            f"({trained.search.fits} fits in {search_shards} shard(s)) run {trained.run_id}"
        )
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
    return namedtuple("SearchOutputs", ["run_id", "model_uri"])(trained.run_id, trained.model_uri)
