"""search-shard: fit one shard's slice of the grid; its scores go to the pipeline's MLflow run."""

from kfp.dsl import Dataset, Input


def search_shard(
    dataset: Input[Dataset],
    search_params: dict,
    search_shards: int,
    pipeline_run: str,
    shard: int,
):
    """Fit and score shard ``shard`` of ``search_shards``; write ``shards/shard-<i>.json``."""
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import spec_from_metadata
    from slipway.orchestration import prepare_exit
    from slipway.params import SearchParams
    from slipway.training import Sharding, run_shard

    settings = settings_for(load_settings(), dataset.metadata)
    params = SearchParams.model_validate(search_params)
    spec = spec_from_metadata(dataset.metadata)
    sharding = Sharding(shards=search_shards, pipeline_run=pipeline_run)
    scores = run_shard(Path(dataset.path), spec, params, settings, sharding, int(shard))
    print(f"shard {shard} of {search_shards}: {len(scores)} fits")
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
