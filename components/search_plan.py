"""search-plan: check the shard count and create the pipeline's MLflow run of a sharded search."""

from kfp.dsl import Dataset, Input


def search_plan(
    dataset: Input[Dataset],
    search_params: dict,
    search_shards: int,
    pipeline_run: str,
) -> list:
    """Return the shard indices ``[0 … search_shards-1]`` that the shard tasks iterate over."""
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import DatasetRef, spec_from_metadata
    from slipway.orchestration import prepare_exit
    from slipway.params import SearchParams
    from slipway.training import Sharding, plan_search

    settings = settings_for(load_settings(), dataset.metadata)
    params = SearchParams.model_validate(search_params)
    ref = DatasetRef.from_metadata(dataset.metadata)
    spec = spec_from_metadata(dataset.metadata)
    sharding = Sharding(shards=search_shards, pipeline_run=pipeline_run)
    shards = plan_search(Path(dataset.path), ref, spec, params, settings, sharding)
    print(f"{search_shards} shards planned for Kubeflow run {pipeline_run}")
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
    return shards
