"""promote: registry version, version code, immutable package, champion alias (idempotent)."""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output


def promote(
    dataset: Input[Dataset],
    model: Input[Model],
    run_id: str,
    model_uri: str,
    decision: Input[Artifact],
    data_params: dict,
    search_params: dict,
    run_report: Output[HTML],
) -> NamedTuple("PromoteOutputs", [("version_code", str), ("package_uri", str)]):
    """Promote the candidate that evaluate approved; a rerun for the same run changes nothing.

    The package follows the dataset spec from the artifact's metadata; ``data_params`` is not
    read (the spec names the target); the pipeline still passes it.
    """
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    import json
    from collections import namedtuple
    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import spec_from_metadata
    from slipway.orchestration import prepare_exit, reporting_step
    from slipway.params import SearchParams
    from slipway.registry import CandidateRun, promote_candidate
    from slipway.training import Decision, write_run_report

    settings = settings_for(load_settings(), dataset.metadata)
    with reporting_step(
        "promote", settings.pushgateway_url, settings.model_name, dataset.metadata
    ) as report:
        verdict = Decision.from_dict(json.loads(Path(decision.path).read_text()))
        candidate = CandidateRun.from_artifacts(run_id, model_uri, model, dataset)
        result = promote_candidate(
            candidate,
            verdict.champion_version,
            verdict.candidate,
            spec_from_metadata(dataset.metadata),
            SearchParams.model_validate(search_params),
            settings,
        )
        print(f"EFS copy: {result.efs_path or 'made by the efs-sync Lambda from the S3 event'}")
        print(
            f"promoted {result.version_code} (registry version {result.registry_version}) -> {result.package_uri}"
        )
        # the run's HTML page again, now with the version code
        write_run_report(settings.tracking_uri, run_id, Path(run_report.path), log=True)
        report.promoted = True
        report.ends_run = True
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
    return namedtuple("PromoteOutputs", ["version_code", "package_uri"])(
        result.version_code, result.package_uri
    )
