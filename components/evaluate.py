"""evaluate: holdout metrics, the champion on the same holdout, and the promotion decision."""

from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)


def evaluate(
    dataset: Input[Dataset],
    model: Input[Model],
    validation: Input[Markdown],
    run_id: str,
    model_uri: str,
    data_params: dict,
    search_params: dict,
    evaluate_params: dict,
    metrics: Output[Metrics],
    curves: Output[ClassificationMetrics],
    decision: Output[Artifact],
    run_report: Output[HTML],
) -> bool:
    """Score candidate and champion; returns whether to promote (gates the promote task).

    Metrics follow the dataset's task (spec from the artifact's metadata); ``curves`` holds the
    confusion matrix (and ROC for binary), and stays empty for regression. ``data_params`` is
    not read (the spec names the target); the pipeline still passes it.
    """
    from slipway.orchestration import pause_gc_in_imports

    pause_gc_in_imports()  # a task is mostly imports: no collections in them (task_start)

    import json
    from pathlib import Path

    from slipway.config import load_settings, settings_for
    from slipway.data import spec_from_metadata
    from slipway.orchestration import prepare_exit, reporting_step
    from slipway.params import EvaluateParams, SearchParams
    from slipway.registry import CandidateRun
    from slipway.training import (
        evaluate_candidate,
        holdout_figures,
        report_evaluation,
        validation_with_findings,
    )

    settings = settings_for(load_settings(), dataset.metadata)
    with reporting_step(
        "evaluate", settings.pushgateway_url, settings.model_name, dataset.metadata
    ) as report:
        candidate = CandidateRun.from_artifacts(run_id, model_uri, model, dataset)
        spec = spec_from_metadata(dataset.metadata)
        result = evaluate_candidate(
            candidate,
            spec,
            SearchParams.model_validate(search_params),
            EvaluateParams.model_validate(evaluate_params),
            settings,
        )
        for name, value in result.decision.candidate.items():
            metrics.log_metric(f"holdout_{name}", value)
        for name, value in (result.decision.champion or {}).items():
            metrics.log_metric(f"champion_holdout_{name}", value)
        result.log_curves(curves)
        print(
            f"decision: {'promote' if result.decision.promote else 'keep champion'}: {result.decision.reason}"
        )
        Path(decision.path).write_text(json.dumps(result.decision.to_dict(), indent=2))
        # figures + validation report to the MLflow run, and the run's HTML page (no version yet)
        figures = holdout_figures(candidate, spec, SearchParams.model_validate(search_params))
        validated = validation_with_findings(
            Path(validation.path).read_text(), result.decision.data_problem
        )
        report_evaluation(run_id, figures, validated, settings, Path(run_report.path))
        report.holdout_metrics = dict(result.decision.candidate)
        report.decision = result.decision.promote
        report.promoted = False  # promote sets it once the candidate is the champion
        report.ends_run = not result.decision.promote  # the gate skips promote: the run ends here
    prepare_exit()  # the process exits next: spare its teardown the heap (task_exit)
    return result.decision.promote
