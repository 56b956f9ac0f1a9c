"""pull-data: fetch exactly one DVC dataset version and its spec, and verify its hash."""

from kfp.dsl import Dataset, Output


def pull_data(
    dataset_name: str, dataset_version: str, dataset_rev: str, dataset: Output[Dataset]
) -> None:
    """Fetch ``dataset_version`` of ``dataset_name`` as read at git revision ``dataset_rev``."""
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    from pathlib import Path

    from slipway.config import load_settings
    from slipway.data import count_rows, pull_dataset, settings_for_spec, spec_to_metadata
    from slipway.data.spec import SPEC_METADATA_KEY
    from slipway.orchestration import prepare_exit, reporting_step
    from slipway.orchestration.step_metrics import RUN_STARTED_KEY

    settings = load_settings()
    with reporting_step("pull-data", settings.pushgateway_url, settings.model_name) as report:
        pulled = pull_dataset(
            settings.dvc_repo,
            dataset_name,
            dataset_version,
            Path(dataset.path),
            settings.dvc_remote_url,
            settings.aws_endpoint_url,
            rev=dataset_rev,
        )
        report.model = settings_for_spec(settings, pulled.spec).model_name
        dataset.metadata.update(pulled.ref.to_dict())
        dataset.metadata[SPEC_METADATA_KEY] = spec_to_metadata(pulled.spec)
        dataset.metadata[RUN_STARTED_KEY] = report.run_started_at
        report.dataset_rows = count_rows(Path(dataset.path))
    print(f"pulled dataset {pulled.ref.name} {pulled.ref.label} ({pulled.ref.path})")
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
