"""The evaluate step: candidate and champion on the same holdout, the gate, and the MLflow record.

Metrics per task are :mod:`slipway.training.metrics`; the gate is :mod:`slipway.training.gate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from slipway.data import DatasetSpec
from slipway.params import EvaluateParams, SearchParams
from slipway.training.gate import Decision, decide_promotion
from slipway.training.metrics import (
    Curves,
    Residuals,
    confusion_and_roc,
    residuals,
    score_model,
)

if TYPE_CHECKING:
    from slipway.config import Settings
    from slipway.registry import CandidateRun

#: Where the residual points go in the candidate's MLflow run (regression only).
RESIDUALS_ARTIFACT = "evaluation/residuals.json"


@dataclass
class Evaluation:
    """What evaluate found.

    Attributes:
        decision: whether to promote, and why.
        curves: confusion matrix (and for binary ROC points), ``None`` for regression.
        holdout_rows: rows of the holdout both models were scored on.
        residuals: actual and predicted values (regression only, else ``None``).
    """

    decision: Decision
    curves: Curves | None
    holdout_rows: int
    residuals: Residuals | None = None

    def log_curves(self, artifact: Any) -> None:
        """Fill a KFP ``ClassificationMetrics`` artifact; a regression leaves it empty."""
        if self.curves is not None:
            self.curves.log_to(artifact)


@dataclass(frozen=True)
class Champion:
    """The serving model, loaded from its verified package.

    Attributes:
        registry_version: its MLflow registry version.
        version_code: its package's version code.
        model: the deserialised Pipeline.
        recorded_metrics: the holdout metrics recorded in its manifest at promotion.
    """

    registry_version: str
    version_code: str
    model: Any
    recorded_metrics: dict[str, float]


def load_champion(settings: Settings) -> Champion | None:
    """The champion, verified from the model store; ``None`` when there is no champion yet.

    Raises:
        ModelPackageError: the champion's package is missing or fails its checksum.
    """
    from slipway.packaging import load_package, open_model_store
    from slipway.registry import champion_version_code, get_client

    found = champion_version_code(get_client(settings.tracking_uri), settings.model_name)
    if found is None:
        return None
    registry_version, code = found
    store = open_model_store(settings)
    model, manifest = load_package(store, settings.model_name, code)
    recorded = {k: float(v) for k, v in (manifest.get("metrics") or {}).items()}
    return Champion(registry_version, code, model, recorded)


def evaluate_candidate(
    candidate: CandidateRun,
    spec: DatasetSpec,
    search_params: SearchParams,
    evaluate_params: EvaluateParams,
    settings: Settings,
) -> Evaluation:
    """Score the candidate and the champion on the same holdout and decide; log it all to the run.

    Args:
        candidate: the run, model file and dataset file the search step produced.
        spec: the dataset's spec (task, target, features).
        search_params: the ``search`` section (the holdout's fraction and seed).
        evaluate_params: the ``evaluate`` section (thresholds, primary metric, ``min_delta``,
            ``max_champion_drop``).
        settings: the configuration (MLflow, model store, model name).

    Returns:
        The decision, the candidate's curves or residuals, and the holdout size.

    Raises:
        ConfigError: the primary metric or a threshold does not fit the task (before anything
            is read or logged).
        ModelPackageError: the candidate or the champion's package does not load safely.
    """
    from slipway.packaging import loads_model
    from slipway.training.rows import holdout_rows
    from slipway.training.tracking import mlflow_client

    evaluate_params.check_task(spec.task)
    metric = evaluate_params.primary_metric_for(spec.task)
    # the holdout only: the table and the training rows are never held (docs/benchmarks.md)
    holdout = holdout_rows(candidate.csv_path, spec, search_params)
    model = loads_model(candidate.model_path.read_bytes())
    metrics = score_model(model, holdout, spec)
    champion = load_champion(settings)
    champion_metrics = score_model(champion.model, holdout, spec) if champion else None
    decision = decide_promotion(
        metrics,
        champion_metrics,
        evaluate_params,
        champion.registry_version if champion else None,
        champion.version_code if champion else None,
        task=spec.task,
        champion_recorded=champion.recorded_metrics.get(metric) if champion else None,
    )
    regression = spec.task == "regression"
    evaluation = Evaluation(
        decision,
        None if regression else confusion_and_roc(model, holdout, spec),
        len(holdout),
        residuals(model, holdout, spec) if regression else None,
    )
    client = mlflow_client(settings.tracking_uri)
    _log_evaluation(
        client,
        candidate.run_id,
        {
            **{f"holdout_{k}": v for k, v in metrics.items()},
            "holdout_rows": float(len(holdout)),
            **{f"champion_holdout_{k}": v for k, v in (champion_metrics or {}).items()},
        },
        {
            "slipway.decision": "promote" if decision.promote else "keep",
            "slipway.decision_reason": decision.reason,
            "slipway.champion_version": champion.version_code if champion else "none",
            "slipway.primary_metric": metric,
            **({"slipway.data_problem": decision.data_problem} if decision.data_problem else {}),
        },
    )
    if evaluation.residuals is not None:
        client.log_text(
            candidate.run_id, json.dumps(asdict(evaluation.residuals)), RESIDUALS_ARTIFACT
        )
    return evaluation


def _log_evaluation(
    client: Any, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str]
) -> None:
    """Add the metrics and tags to the candidate's run, in one call and without the fluent API."""
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )
