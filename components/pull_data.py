"""pull-data: fetch exactly one DVC dataset version and verify its hash."""

from kfp.dsl import Dataset, Output


def pull_data(dataset_version: str, dataset_rev: str, dataset: Output[Dataset]) -> None:
    """Fetch ``dataset_version`` as read at git revision ``dataset_rev`` of the DVC project."""
    from pathlib import Path

    from slipway.config import load_settings
    from slipway.data import breast_cancer_spec, pull_dataset, read_csv, spec_to_metadata
    from slipway.orchestration import reporting_step
    from slipway.orchestration.step_metrics import RUN_STARTED_KEY

    settings = load_settings()
    with reporting_step("pull-data", settings.pushgateway_url, settings.model_name) as report:
        ref = pull_dataset(
            settings.dvc_repo,
            dataset_version,
            Path(dataset.path),
            settings.dvc_remote_url,
            settings.aws_endpoint_url,
            rev=dataset_rev,
        )
        dataset.metadata.update(ref.to_dict())
        dataset.metadata["spec"] = spec_to_metadata(breast_cancer_spec())
        dataset.metadata[RUN_STARTED_KEY] = report.run_started_at
        report.dataset_rows = len(read_csv(Path(dataset.path)))
    print(f"pulled dataset {ref.label} ({ref.path}) from {settings.dvc_remote_url}")
