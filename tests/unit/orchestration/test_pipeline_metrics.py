"""Pipeline metrics: names, values and the MLflow summary mapping (no network)."""

from __future__ import annotations

from prometheus_client import generate_latest

from slipway.orchestration.pipeline_metrics import (
    PipelineRunMetrics,
    build_registry,
    pipeline_run_from_summary,
)


def _samples(run: PipelineRunMetrics) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in build_registry(run).collect()
        for s in family.samples
    }


def test_failed_run_reports_no_success_time_and_no_promotion() -> None:
    samples = _samples(PipelineRunMetrics(5.0, succeeded=False, promoted=True))
    assert samples == {
        ("slipway_pipeline_run_duration_seconds", ()): 5.0,
        ("slipway_pipeline_last_run_failed", ()): 1.0,
        ("slipway_pipeline_data_validation_failed", ()): 0.0,
        ("slipway_pipeline_promoted", ()): 0.0,
    }


def test_success_time_defaults_to_now() -> None:
    import time

    before = time.time()
    samples = _samples(PipelineRunMetrics(1.0, succeeded=True))
    assert before <= samples[("slipway_pipeline_last_success_timestamp_seconds", ())] <= time.time()
    text = generate_latest(build_registry(PipelineRunMetrics(1.0, True))).decode()
    assert "# TYPE slipway_pipeline_run_duration_seconds gauge" in text


def test_run_from_mlflow_summary() -> None:
    summary = {
        "metrics": {
            "holdout_roc_auc": 0.99,
            "holdout_f1": 0.96,
            "champion_holdout_roc_auc": 0.98,
            "train_rows": 455.0,
            "holdout_rows": 114.0,
            "cv_roc_auc": 0.97,
        },
        "tags": {"slipway.promoted": "true"},
    }
    run = pipeline_run_from_summary(summary, 42.0)
    assert run.succeeded
    assert run.promoted
    assert run.duration_seconds == 42.0
    assert dict(run.holdout_metrics) == {"roc_auc": 0.99, "f1": 0.96}
    assert dict(run.rows) == {"train": 455, "holdout": 114}
    assert pipeline_run_from_summary({"metrics": {}, "tags": {}}, 1.0).promoted is False
