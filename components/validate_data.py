"""validate-data: the dataset's spec, every violation in one report; a failure stops the run."""

from kfp.dsl import Dataset, Input, Markdown, Output


def validate_data(dataset: Input[Dataset], report: Output[Markdown]) -> None:
    """Validate lazily against the spec pull-data stored, write the report, fail if anything is wrong."""
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import (
        DatasetRef,
        ensure_valid,
        load_frame,
        spec_from_metadata,
        validate_with_spec,
    )
    from slipway.orchestration import prepare_exit, reporting_step

    settings = settings_for(load_settings(), dataset.metadata)
    with reporting_step(
        "validate-data", settings.pushgateway_url, settings.model_name, dataset.metadata
    ):
        spec = spec_from_metadata(dataset.metadata)
        ref = DatasetRef.from_metadata(dataset.metadata)
        label = f"{ref.name} {ref.label}"
        result = validate_with_spec(
            load_frame(Path(dataset.path), spec, require_target=False), spec
        )
        Path(report.path).write_text(result.to_markdown(label))
        print(result.to_markdown(label))
        ensure_valid(result, label)
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
