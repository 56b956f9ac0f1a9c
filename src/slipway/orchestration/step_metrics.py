"""Pipeline KPIs pushed by the pipeline's own tasks, so a run on Kubeflow reports like a local one.

Every component body runs inside :func:`reporting_step`. It pushes, to the Pushgateway named by
``SLIPWAY_PUSHGATEWAY_URL`` (on EKS from the ``slipway-config`` ConfigMap):

- the step's wall time and outcome, ``slipway_pipeline_step_duration_seconds{step}`` and
  ``slipway_pipeline_step_failed{step}``, each step in its own group ``{job, model, step}``
  (``pushadd`` replaces a family whole within a group, so one group per step keeps them all);
- what the step learned, into the run group ``{job, model}``: dataset rows (pull-data), holdout
  metrics and the promotion decision (evaluate), promoted (promote);
- the run's outcome when the run ends here: a failed step ends the run as failed
  (``slipway_pipeline_data_validation_failed`` = 1 when it is validate-data); the last step
  (evaluate when it keeps the champion, promote otherwise) ends it as a success.

The run's start time travels in the dataset artifact's metadata (written by pull-data), so the
last step can report the run's duration. Reporting never fails a task: an unset URL does nothing,
an unreachable gateway logs a warning (see :func:`push_gauges`). A pod killed from outside (OOM,
deadline) reports nothing; the machine KPIs (``slipway_step_duration_seconds``) still see it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from slipway.orchestration.pipeline_metrics import (
    PipelineRunMetrics,
    build_registry,
    push_gauges,
    push_pipeline_metrics,
)

#: The dataset artifact's metadata key holding the run's start (Unix time), set by pull-data.
RUN_STARTED_KEY = "slipway_run_started_at"
VALIDATE_STEP = "validate-data"


@dataclass
class StepReport:
    """What a step tells :func:`reporting_step` while it runs.

    Attributes:
        run_started_at: Unix time the run started (pull-data: now; later steps: from metadata).
        dataset_rows: rows of the pulled dataset version (pull-data).
        holdout_metrics: the candidate's holdout metrics (evaluate).
        decision: whether evaluate decided to promote (evaluate).
        promoted: the candidate became the champion (promote).
        ends_run: this step is the run's last one; success then reports the run as succeeded.
        model: the model the pushes are grouped under, when the block learns it (pull-data
            learns it from the dataset's spec); ``None`` keeps the ``model`` argument.
    """

    run_started_at: float | None = None
    dataset_rows: int | None = None
    holdout_metrics: Mapping[str, float] = field(default_factory=dict)
    decision: bool | None = None
    promoted: bool | None = None
    ends_run: bool = False
    model: str | None = None


def _run_started(metadata: Mapping[str, object] | None) -> float | None:
    value = None if metadata is None else metadata.get(RUN_STARTED_KEY)
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@contextmanager
def reporting_step(
    step: str,
    pushgateway_url: str | None,
    model: str,
    dataset_metadata: Mapping[str, object] | None = None,
) -> Iterator[StepReport]:
    """Time the block and push the step's (and, when it ends the run, the run's) KPIs.

    Args:
        step: the task name, e.g. ``pull-data``.
        pushgateway_url: ``settings.pushgateway_url``; ``None`` pushes nothing.
        model: ``settings.model_name``, the grouping key besides ``job``.
        dataset_metadata: the dataset artifact's metadata (carries the run's start time);
            ``None`` for pull-data, which starts the clock.

    Yields:
        The :class:`StepReport` the block fills in. An exception in the block is re-raised
        after the failure was reported.
    """
    started = time.time()
    report = StepReport(run_started_at=_run_started(dataset_metadata) or started)
    try:
        yield report
    except BaseException:
        model = report.model or model
        finished = time.time()
        _push_step(pushgateway_url, model, step, finished - started, failed=True)
        run = PipelineRunMetrics(
            duration_seconds=finished - (report.run_started_at or started),
            succeeded=False,
            data_validation_failed=step == VALIDATE_STEP,
        )
        push_pipeline_metrics(pushgateway_url, run, model=model)
        raise
    model = report.model or model
    finished = time.time()
    _push_step(pushgateway_url, model, step, finished - started, failed=False)
    _push_findings(pushgateway_url, model, report)
    if report.ends_run:
        run = PipelineRunMetrics(
            duration_seconds=finished - (report.run_started_at or started),
            succeeded=True,
            promoted=bool(report.promoted),
            finished_at=finished,
        )
        # holdout metrics were pushed by evaluate; the promoted family by evaluate or promote
        push_gauges(pushgateway_url, model, build_registry(run, families=_RUN_OUTCOME))


_RUN_OUTCOME = frozenset(
    {
        "slipway_pipeline_run_duration_seconds",
        "slipway_pipeline_last_run_failed",
        "slipway_pipeline_data_validation_failed",
        "slipway_pipeline_last_success_timestamp_seconds",
    }
)


def _push_step(url: str | None, model: str, step: str, seconds: float, failed: bool) -> None:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    labels = {"step": step}
    Gauge(
        "slipway_pipeline_step_duration_seconds",
        "Wall time of the step in the last run.",
        list(labels),
        registry=registry,
    ).labels(**labels).set(seconds)
    Gauge(
        "slipway_pipeline_step_failed",
        "1 when the step failed in the last run, else 0.",
        list(labels),
        registry=registry,
    ).labels(**labels).set(1.0 if failed else 0.0)
    push_gauges(url, model, registry, grouping={"step": step})


def _push_findings(url: str | None, model: str, report: StepReport) -> None:
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    filled = False
    if report.dataset_rows is not None:
        rows = Gauge("slipway_pipeline_rows", "Rows per split.", ["split"], registry=registry)
        rows.labels(split="dataset").set(report.dataset_rows)
        filled = True
    if report.holdout_metrics:
        holdout = Gauge(
            "slipway_pipeline_holdout_metric",
            "Holdout metrics of the last candidate.",
            ["metric"],
            registry=registry,
        )
        for name, value in report.holdout_metrics.items():
            holdout.labels(metric=name).set(value)
        filled = True
    if report.decision is not None:
        Gauge(
            "slipway_pipeline_promotion_decision",
            "1 when evaluate decided to promote the last candidate, else 0.",
            registry=registry,
        ).set(1.0 if report.decision else 0.0)
        filled = True
    if report.promoted is not None:
        Gauge(
            "slipway_pipeline_promoted",
            "1 when the last run promoted its candidate.",
            registry=registry,
        ).set(1.0 if report.promoted else 0.0)
        filled = True
    if filled:
        push_gauges(url, model, registry)
