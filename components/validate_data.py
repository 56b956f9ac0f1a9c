"""validate-data: the pandera schema, every violation in one report; a failure stops the run."""

from kfp.dsl import Dataset, Input, Markdown, Output


def validate_data(dataset: Input[Dataset], data_params: dict, report: Output[Markdown]) -> None:
    """Validate lazily, write the report artifact, and fail the task if anything is wrong."""
    from pathlib import Path

    from slipway.config import load_settings
    from slipway.data import DatasetRef, ensure_valid, read_csv, validate_dataset
    from slipway.orchestration import reporting_step
    from slipway.params import DataParams

    settings = load_settings()
    with reporting_step(
        "validate-data", settings.pushgateway_url, settings.model_name, dataset.metadata
    ):
        params = DataParams.model_validate(data_params)
        label = DatasetRef.from_metadata(dataset.metadata).label
        result = validate_dataset(read_csv(Path(dataset.path)), **params.model_dump())
        Path(report.path).write_text(result.to_markdown(label))
        print(result.to_markdown(label))
        ensure_valid(result, label)
