"""Holdout metrics and the promotion gate (thresholds + champion comparison)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slipway.params import EvaluateParams


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


def confusion_and_roc(model: Any, frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """Confusion matrix and ROC curve points, for the KFP ClassificationMetrics artifact."""
    from sklearn.metrics import confusion_matrix, roc_curve

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    proba = model.predict_proba(x)[:, 1]
    fpr, tpr, thresholds = roc_curve(y, proba)
    # roc_curve's first threshold is +inf, which JSON (and the KFP UI) cannot hold
    thresholds = np.minimum(thresholds, 1.0)
    return {
        "labels": ["benign", "malignant"],
        "matrix": confusion_matrix(y, (proba >= 0.5).astype(int), labels=[0, 1]).tolist(),
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "thresholds": thresholds.tolist(),
    }


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
        return asdict(self)


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
    decision: Decision
    curves: dict[str, Any]
    holdout_rows: int


def load_champion(settings: Any) -> tuple[str, str, Any] | None:
    """``(registry version, version code, model)`` of the champion, verified from the model store."""
    from slipway.packaging import load_package, open_model_store
    from slipway.registry import champion_version_code, get_client

    found = champion_version_code(get_client(settings.tracking_uri), settings.model_name)
    if found is None:
        return None
    registry_version, code = found
    store = open_model_store(
        settings.model_store_url, settings.aws_endpoint_url, settings.aws_region
    )
    model, _ = load_package(store, settings.model_name, code)
    return registry_version, code, model


def evaluate_candidate(
    csv_path: Any,
    model_path: Any,
    run_id: str,
    data_params: Any,
    search_params: Any,
    evaluate_params: EvaluateParams,
    settings: Any,
) -> Evaluation:
    """Score the candidate and the champion on the same holdout and decide; log it all to the run."""
    from pathlib import Path

    import mlflow

    from slipway.data import read_csv, split_dataset
    from slipway.packaging import loads_model
    from slipway.training.tracking import configure_mlflow

    target = data_params.target
    _, holdout = split_dataset(
        read_csv(Path(csv_path)), search_params.holdout_fraction, search_params.seed, target
    )
    candidate = loads_model(Path(model_path).read_bytes())
    metrics = score_model(candidate, holdout, target)
    champion = load_champion(settings)
    champion_metrics = score_model(champion[2], holdout, target) if champion else None
    decision = decide_promotion(
        metrics,
        champion_metrics,
        evaluate_params,
        champion[0] if champion else None,
        champion[1] if champion else None,
    )
    configure_mlflow(settings.tracking_uri, settings.experiment_name, settings.artifact_root)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metric("holdout_rows", float(len(holdout)))
        if champion_metrics:
            mlflow.log_metrics({f"champion_holdout_{k}": v for k, v in champion_metrics.items()})
        mlflow.set_tags(
            {
                "slipway.decision": "promote" if decision.promote else "keep",
                "slipway.decision_reason": decision.reason,
                "slipway.champion_version": champion[1] if champion else "none",
            }
        )
    return Evaluation(decision, confusion_and_roc(candidate, holdout, target), len(holdout))
