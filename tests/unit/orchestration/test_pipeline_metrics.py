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


def test_families_keeps_only_the_named_gauges() -> None:
    run = PipelineRunMetrics(
        2.0, True, holdout_metrics={"roc_auc": 0.9}, rows={"train": 1}, finished_at=10.0
    )
    kept = {
        s.name
        for family in build_registry(
            run,
            families={"slipway_pipeline_last_run_failed", "slipway_pipeline_holdout_metric"},
        ).collect()
        for s in family.samples
    }
    assert kept == {"slipway_pipeline_last_run_failed", "slipway_pipeline_holdout_metric"}


def test_reporting_step_without_a_gateway_reraises_and_pushes_nothing(monkeypatch) -> None:
    import pytest

    from slipway.orchestration import step_metrics

    pushed: list[object] = []
    monkeypatch.setattr(
        "prometheus_client.pushadd_to_gateway", lambda *a, **k: pushed.append((a, k))
    )
    with (
        pytest.raises(RuntimeError, match="boom"),
        step_metrics.reporting_step("search", None, "m", {}),
    ):
        raise RuntimeError("boom")
    with step_metrics.reporting_step("pull-data", None, "m") as report:
        report.dataset_rows = 3
        report.ends_run = True
    assert pushed == []


def test_run_start_comes_from_the_dataset_metadata() -> None:
    from slipway.orchestration.step_metrics import RUN_STARTED_KEY, reporting_step

    with reporting_step("evaluate", None, "m", {RUN_STARTED_KEY: 123.5}) as report:
        assert report.run_started_at == 123.5
    with reporting_step("evaluate", None, "m", {RUN_STARTED_KEY: "not a time"}) as report:
        assert report.run_started_at is not None
        assert report.run_started_at > 123.5
