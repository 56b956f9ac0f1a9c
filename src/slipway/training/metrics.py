"""Holdout metrics per task, and the curves and residuals the dashboard shows.

- binary: ``roc_auc``, ``f1``, ``recall``, ``precision``, ``accuracy``, ``log_loss`` (for the
  spec's positive class), confusion matrix and ROC curve;
- multiclass: ``f1_macro``, ``balanced_accuracy``, ``log_loss``, ``roc_auc_ovr`` (macro average
  of one-vs-rest AUCs over the classes present), ``accuracy``, confusion matrix;
- regression: ``rmse``, ``mae``, ``r2``, and residual points (actual, predicted).

The names are ``slipway.params.METRICS``; which are lower-is-better is
``slipway.params.LOWER_IS_BETTER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slipway.data import DatasetSpec
from slipway.training.features import feature_frame, target_values

#: At most this many residual points are kept (the holdout's first rows), for a JSON artifact.
MAX_RESIDUAL_POINTS = 1000


def score_model(model: Any, frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float]:
    """The task's metrics of ``model`` on ``frame`` (``slipway.params.METRICS[spec.task]``)."""
    return score_features(model, feature_frame(frame, spec), target_values(frame, spec), spec)


def score_features(
    model: Any, x: pd.DataFrame, y: np.ndarray, spec: DatasetSpec
) -> dict[str, float]:
    """:func:`score_model` on rows already split into the model's input and the target.

    Args:
        model: the fitted Pipeline.
        x: the rows as the model takes them (:func:`~slipway.data.feature_frame`).
        y: their target (:func:`~slipway.training.features.target_values`).
        spec: the dataset's spec (task, positive class).
    """
    if spec.task == "regression":
        return _regression_scores(y, model.predict(x))
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    if spec.task == "binary":
        return _binary_scores(y, proba, classes, spec.positive_class)
    return _multiclass_scores(y, proba, classes)


@dataclass(frozen=True)
class Curves:
    """Confusion matrix (classification) and ROC curve (binary) on the holdout, JSON-ready.

    Attributes:
        labels: class names as text, in the spec's order (binary: negative first).
        matrix: confusion matrix rows (true class) by columns (predicted class).
        fpr: false positive rates of the ROC curve (binary only, else empty).
        tpr: true positive rates of the ROC curve (binary only, else empty).
        thresholds: the thresholds of those points, capped at 1.0 (binary only, else empty).
    """

    labels: list[str]
    matrix: list[list[int]]
    fpr: list[float] = field(default_factory=list)
    tpr: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)

    def log_to(self, artifact: Any) -> None:
        """Write the curves into a KFP ``ClassificationMetrics`` artifact (ROC only when binary)."""
        artifact.log_confusion_matrix(self.labels, self.matrix)
        if self.fpr:
            artifact.log_roc_curve(self.fpr, self.tpr, self.thresholds)


@dataclass(frozen=True)
class Residuals:
    """Regression residual points on the holdout (at most :data:`MAX_RESIDUAL_POINTS`).

    Attributes:
        actual: the target values.
        predicted: the model's predictions for the same rows.
    """

    actual: list[float]
    predicted: list[float]


def confusion_and_roc(model: Any, frame: pd.DataFrame, spec: DatasetSpec) -> Curves:
    """Confusion matrix, and for binary the ROC curve points, of a classifier on ``frame``."""
    from sklearn.metrics import confusion_matrix, roc_curve

    x, y = feature_frame(frame, spec), target_values(frame, spec)
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    if spec.task == "binary":
        positive = spec.positive_class
        negative = next(c for c in spec.classes or () if c != positive)
        labels = [negative, positive]
        scores = proba[:, classes.index(positive)]
        pred = np.where(scores >= 0.5, positive, negative)
        fpr, tpr, thresholds = roc_curve(y, scores, pos_label=positive)
        # roc_curve's first threshold is +inf, which JSON (and the KFP UI) cannot hold
        roc = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": np.minimum(thresholds, 1.0).tolist(),
        }
    else:
        labels = list(spec.classes or classes)
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        roc = {}
    matrix = confusion_matrix(list(y), list(pred), labels=labels).tolist()
    return Curves(labels=[str(c) for c in labels], matrix=matrix, **roc)


def residuals(model: Any, frame: pd.DataFrame, spec: DatasetSpec) -> Residuals:
    """Actual and predicted values of a regressor on ``frame``'s first rows."""
    head = frame.head(MAX_RESIDUAL_POINTS)
    predicted = model.predict(feature_frame(head, spec))
    return Residuals(
        actual=[float(v) for v in target_values(head, spec)],
        predicted=[float(v) for v in predicted],
    )


def _binary_scores(
    y: np.ndarray, proba: np.ndarray, classes: list[Any], positive: Any
) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    scores = proba[:, classes.index(positive)]
    hit = y == positive
    pred = scores >= 0.5
    return {
        "accuracy": float(accuracy_score(hit, pred)),
        "precision": float(precision_score(hit, pred, zero_division=0)),
        "recall": float(recall_score(hit, pred, zero_division=0)),
        "f1": float(f1_score(hit, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(hit, scores)),
        "log_loss": float(log_loss(hit, scores, labels=[False, True])),
    }


def _multiclass_scores(y: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    y_list, pred_list = list(y), list(pred)
    return {
        "f1_macro": float(
            f1_score(y_list, pred_list, labels=classes, average="macro", zero_division=0)
        ),
        "balanced_accuracy": float(balanced_accuracy_score(y_list, pred_list)),
        "log_loss": float(log_loss(y_list, proba, labels=classes)),
        "roc_auc_ovr": _macro_ovr_auc(y, proba, classes),
        "accuracy": float(accuracy_score(y_list, pred_list)),
    }


def _macro_ovr_auc(y: np.ndarray, proba: np.ndarray, classes: list[Any]) -> float:
    """Mean one-vs-rest ROC AUC over the classes with both positives and negatives in ``y``.

    scikit-learn's ``multi_class="ovr"`` refuses a holdout that lacks a class; a small holdout
    of a rare class can, so such classes are left out of the mean instead.
    """
    from sklearn.metrics import roc_auc_score

    aucs = []
    for i, label in enumerate(classes):
        hit = y == label
        if 0 < hit.sum() < len(y):
            aucs.append(roc_auc_score(hit, proba[:, i]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _regression_scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }
