"""Holdout metrics and the promotion gate (thresholds + champion comparison)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from slipway.params import DataParams, EvaluateParams, SearchParams

if TYPE_CHECKING:
    from slipway.config import Settings
    from slipway.registry import CandidateRun


def score_model(model: Any, frame: pd.DataFrame, target: str) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC and log loss of ``model`` on ``frame``."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    proba = model.predict_proba(x)[:, 1]
    pred = (proba >= 0.5).astype(int)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
    }


@dataclass(frozen=True)
class Curves:
    """Confusion matrix and ROC curve of a model on the holdout, JSON-ready.

    Attributes:
        labels: class names, negative first.
        matrix: confusion matrix rows (true class) by columns (predicted class).
        fpr: false positive rates of the ROC curve.
        tpr: true positive rates of the ROC curve.
        thresholds: the thresholds of those points, capped at 1.0.
    """

    labels: list[str]
    matrix: list[list[int]]
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


def confusion_and_roc(model: Any, frame: pd.DataFrame, target: str) -> Curves:
    """Confusion matrix and ROC curve points, for the KFP ClassificationMetrics artifact."""
    from sklearn.metrics import confusion_matrix, roc_curve

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    proba = model.predict_proba(x)[:, 1]
    fpr, tpr, thresholds = roc_curve(y, proba)
    # roc_curve's first threshold is +inf, which JSON (and the KFP UI) cannot hold
    thresholds = np.minimum(thresholds, 1.0)
    return Curves(
        labels=["benign", "malignant"],
        matrix=confusion_matrix(y, (proba >= 0.5).astype(int), labels=[0, 1]).tolist(),
        fpr=fpr.tolist(),
        tpr=tpr.tolist(),
        thresholds=thresholds.tolist(),
    )


@dataclass
class Decision:
    """Whether to promote, and why, in words a person reads in the run summary."""

    promote: bool
    reason: str
    candidate: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    failed_thresholds: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data (the pipeline's ``decision`` artifact)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_dict`'s data (read back by the promote step).

        Raises:
            TypeError: ``data`` lacks a field or has one a decision does not have.
        """
        return cls(**data)


def decide_promotion(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    params: EvaluateParams,
    champion_version: str | None = None,
    champion_label: str | None = None,
) -> Decision:
    """Promote when every threshold holds and the candidate beats the champion by ``min_delta``.

    With no champion yet, the thresholds alone decide.
    """
    failed = [
        f"{name} {candidate[name]:.4f} < {floor:.4f}"
        for name, floor in params.thresholds.items()
        if candidate[name] < floor
    ]
    metric = params.primary_metric
    if failed:
        reason = "below the absolute thresholds: " + "; ".join(failed)
        return Decision(False, reason, candidate, champion, champion_version, failed)
    if champion is None:
        reason = f"no champion yet and every threshold holds ({metric} {candidate[metric]:.4f})"
        return Decision(True, reason, candidate, None, None)
    delta = candidate[metric] - champion[metric]
    versus = (
        f"{metric} {candidate[metric]:.4f} vs champion {champion_label or champion_version} "
        f"{champion[metric]:.4f} (delta {delta:+.4f}, needed >= {params.min_delta:+.4f})"
    )
    if delta >= params.min_delta:
        return Decision(
            True, f"better than the champion: {versus}", candidate, champion, champion_version
        )
    return Decision(
        False, f"not better than the champion: {versus}", candidate, champion, champion_version
    )


@dataclass
class Evaluation:
    """What evaluate found.

    Attributes:
        decision: whether to promote, and why.
        curves: confusion matrix and ROC points (:func:`confusion_and_roc`).
        holdout_rows: rows of the holdout both models were scored on.
    """

    decision: Decision
    curves: Curves
    holdout_rows: int


def load_champion(settings: Settings) -> tuple[str, str, Any] | None:
    """``(registry version, version code, model)`` of the champion, verified from the model store.

    Returns:
        ``None`` when there is no champion yet.

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
    model, _ = load_package(store, settings.model_name, code)
    return registry_version, code, model


def evaluate_candidate(
    candidate: CandidateRun,
    data_params: DataParams,
    search_params: SearchParams,
    evaluate_params: EvaluateParams,
    settings: Settings,
) -> Evaluation:
    """Score the candidate and the champion on the same holdout and decide; log it all to the run.

    Args:
        candidate: the run, model file and dataset file the search step produced.
        data_params: the ``data`` section of ``params.yaml`` (the target column).
        search_params: the ``search`` section (the holdout's fraction and seed).
        evaluate_params: the ``evaluate`` section (thresholds, primary metric, ``min_delta``).
        settings: the configuration (MLflow, model store, model name).

    Returns:
        The decision, the candidate's curves and the holdout size.

    Raises:
        ModelPackageError: the candidate or the champion's package does not load safely.
    """
    from slipway.data import read_csv, split_dataset
    from slipway.packaging import loads_model
    from slipway.training.tracking import mlflow_client

    target = data_params.target
    _, holdout = split_dataset(
        read_csv(candidate.csv_path), search_params.holdout_fraction, search_params.seed, target
    )
    model = loads_model(candidate.model_path.read_bytes())
    metrics = score_model(model, holdout, target)
    champion = load_champion(settings)
    champion_metrics = score_model(champion[2], holdout, target) if champion else None
    decision = decide_promotion(
        metrics,
        champion_metrics,
        evaluate_params,
        champion[0] if champion else None,
        champion[1] if champion else None,
    )
    _log_evaluation(
        mlflow_client(settings.tracking_uri),
        candidate.run_id,
        {
            **{f"holdout_{k}": v for k, v in metrics.items()},
            "holdout_rows": float(len(holdout)),
            **{f"champion_holdout_{k}": v for k, v in (champion_metrics or {}).items()},
        },
        {
            "slipway.decision": "promote" if decision.promote else "keep",
            "slipway.decision_reason": decision.reason,
            "slipway.champion_version": champion[1] if champion else "none",
        },
    )
    return Evaluation(decision, confusion_and_roc(model, holdout, target), len(holdout))


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
