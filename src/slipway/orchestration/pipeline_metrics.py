"""Pipeline metrics pushed to a Prometheus Pushgateway at the end of each training run.

MLflow always records a run's metrics; Prometheus (and through ``slipway mirror``, CloudWatch)
sees them only when ``SLIPWAY_PUSHGATEWAY_URL`` is set. The names are the contract in
docs/metrics.md. :func:`push_pipeline_metrics` never fails the pipeline: when the gateway is
down it logs a warning and returns ``False``.

The push uses ``pushadd_to_gateway`` (HTTP POST), not ``push_to_gateway`` (PUT): PUT replaces
*every* metric of the group, so a failed run (which does not report a success time) would erase
``slipway_pipeline_last_success_timestamp_seconds`` and the ``pipeline-stale`` KPI would see
"never succeeded". POST replaces only the metric families it carries; each family is pushed
whole, so a label value that disappeared (a holdout metric no longer computed) disappears too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from slipway.params import METRICS

logger = logging.getLogger(__name__)

PIPELINE_JOB = "slipway-pipeline"

#: The holdout metrics MLflow records as ``holdout_<name>``, every task's (slipway.params.METRICS).
HOLDOUT_METRICS = tuple(dict.fromkeys(name for names in METRICS.values() for name in names))


@dataclass(frozen=True)
class PipelineRunMetrics:
    """What one training run reports.

    Attributes:
        duration_seconds: wall time of the run.
        succeeded: whether every step finished.
        data_validation_failed: validate-data rejected the dataset.
        holdout_metrics: ``{"roc_auc": 0.99, ...}`` of the candidate; empty when none was scored.
        rows: rows per split, e.g. ``{"train": 455, "holdout": 114}``.
        promoted: the candidate became the champion.
        finished_at: Unix time of the end of the run; ``None`` means now.
    """

    duration_seconds: float
    succeeded: bool
    data_validation_failed: bool = False
    holdout_metrics: Mapping[str, float] = field(default_factory=dict)
    rows: Mapping[str, int] = field(default_factory=dict)
    promoted: bool = False
    finished_at: float | None = None


def pipeline_run_from_summary(
    summary: Mapping[str, Any], duration_seconds: float
) -> PipelineRunMetrics:
    """The metrics of a successful run, read from its MLflow run summary.

    Args:
        summary: :func:`slipway.training.tracking.run_summary` of the pipeline's MLflow run.
        duration_seconds: wall time of the run.

    Returns:
        The run's metrics with ``succeeded=True``.
    """
    metrics, tags = summary["metrics"], summary["tags"]
    rows = {
        split: int(metrics[f"{split}_rows"])
        for split in ("train", "holdout")
        if f"{split}_rows" in metrics
    }
    return PipelineRunMetrics(
        duration_seconds=duration_seconds,
        succeeded=True,
        holdout_metrics={
            name: float(metrics[f"holdout_{name}"])
            for name in HOLDOUT_METRICS
            if f"holdout_{name}" in metrics
        },
        rows=rows,
        promoted=tags.get("slipway.promoted") == "true",
    )


def build_registry(run: PipelineRunMetrics, families: Collection[str] | None = None) -> Any:
    """A fresh registry holding the run's gauges (names and labels per docs/metrics.md).

    Args:
        run: what the run reports.
        families: keep only these metric names (the run-outcome gauges the last task pushes);
            ``None`` keeps every family.
    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, value: float) -> None:
        if families is None or name in families:
            Gauge(name, doc, registry=registry).set(value)

    gauge(
        "slipway_pipeline_run_duration_seconds", "Wall time of the last run.", run.duration_seconds
    )
    gauge(
        "slipway_pipeline_last_run_failed",
        "1 when the last run failed, else 0.",
        0.0 if run.succeeded else 1.0,
    )
    gauge(
        "slipway_pipeline_data_validation_failed",
        "1 when validate-data rejected the data, else 0.",
        1.0 if run.data_validation_failed else 0.0,
    )
    gauge(
        "slipway_pipeline_promoted",
        "1 when the last run promoted its candidate.",
        1.0 if run.succeeded and run.promoted else 0.0,
    )
    if run.succeeded:
        gauge(
            "slipway_pipeline_last_success_timestamp_seconds",
            "Unix time of the last successful run.",
            time.time() if run.finished_at is None else run.finished_at,
        )
    # a family with no sample would replace the previous values with nothing: push only filled ones
    if run.holdout_metrics and (families is None or "slipway_pipeline_holdout_metric" in families):
        holdout = Gauge(
            "slipway_pipeline_holdout_metric",
            "Holdout metrics of the last candidate.",
            ["metric"],
            registry=registry,
        )
        for name, value in run.holdout_metrics.items():
            holdout.labels(metric=name).set(value)
    if run.rows and (families is None or "slipway_pipeline_rows" in families):
        rows = Gauge("slipway_pipeline_rows", "Rows per split.", ["split"], registry=registry)
        for split, count in run.rows.items():
            rows.labels(split=split).set(count)
    return registry


def push_pipeline_metrics(
    pushgateway_url: str | None,
    run: PipelineRunMetrics,
    model: str,
    job: str = PIPELINE_JOB,
    timeout: float = 5.0,
) -> bool:
    """Push the run's metrics to the Pushgateway, grouped by job and model.

    Args:
        pushgateway_url: e.g. ``http://prometheus-pushgateway.monitoring:9091``
            (``settings.pushgateway_url``); ``None`` does nothing.
        run: what the run reports.
        model: the model name (``settings.model_name``), the grouping key besides ``job``.
        job: the Pushgateway job, ``slipway-pipeline`` in the KPI catalog.
        timeout: seconds to wait for the gateway.

    Returns:
        True when the gateway accepted the metrics; False when no URL is set or the push failed
        (a warning is logged: metrics must never fail the pipeline).
    """
    if not pushgateway_url:
        return False
    return push_gauges(pushgateway_url, model, build_registry(run), job=job, timeout=timeout)


def push_gauges(
    pushgateway_url: str | None,
    model: str,
    registry: Any,
    grouping: Mapping[str, str] | None = None,
    job: str = PIPELINE_JOB,
    timeout: float = 5.0,
) -> bool:
    """``pushadd`` ``registry`` to the group ``{job, model, **grouping}``; never raises.

    Args:
        pushgateway_url: the gateway; ``None`` does nothing.
        model: the model name, a grouping key.
        registry: a ``prometheus_client.CollectorRegistry`` holding only filled families (a
            family is replaced whole within its group).
        grouping: more grouping keys, e.g. ``{"step": "search"}``.
        job: the Pushgateway job.
        timeout: seconds to wait for the gateway.

    Returns:
        True when the gateway accepted the metrics; False when no URL is set or the push failed
        (a warning is logged: metrics must never fail the pipeline).
    """
    if not pushgateway_url:
        return False
    from prometheus_client import pushadd_to_gateway

    try:
        pushadd_to_gateway(
            pushgateway_url,
            job=job,
            registry=registry,
            grouping_key={"model": model, **(grouping or {})},
            timeout=timeout,
        )
    except Exception as e:  # any failure to report must leave the outcome alone
        logger.warning(
            "could not push pipeline metrics to %s (%s: %s); the run's metrics are in MLflow",
            pushgateway_url,
            type(e).__name__,
            e,
        )
        return False
    return True
