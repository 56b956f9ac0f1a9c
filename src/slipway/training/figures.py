"""Evaluation figures as PNG bytes: what a person looks at beside the holdout metrics.

One function per task, each from plain arrays (true values, predictions, scores), so that they
do not depend on how a model was loaded or a holdout was chosen:

- ``binary``: ROC curve, precision-recall curve, confusion matrix;
- ``multiclass``: confusion matrix, one-vs-rest ROC curve per class;
- ``regression``: residuals against predictions, predictions against actual values.

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``, no ``pyplot``):
no global state and no display needed, the PNG is rendered by the Agg canvas.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from slipway.errors import SlipwayError

if TYPE_CHECKING:
    from slipway.data import DatasetSpec
    from slipway.params import SearchParams
    from slipway.registry import CandidateRun

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
#: Figure size in inches and resolution: 500 x 400 pixels, readable in a report column.
FIGSIZE = (5.0, 4.0)
DPI = 100


class FigureError(SlipwayError, ValueError):
    """The arrays cannot make the figures asked for (wrong task, shape or length)."""


def render_figures(
    task: str,
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray | None = None,
    scores: Sequence[Any] | np.ndarray | None = None,
    labels: Sequence[Any] | None = None,
) -> dict[str, bytes]:
    """The figures of one task, as ``{file name: PNG bytes}`` in display order.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: the true values of the holdout rows.
        y_pred: predicted labels or values; for classification ``None`` derives them from
            ``scores`` (threshold 0.5, or the highest class score). Required for regression.
        scores: classification scores: the positive class's probability (binary, shape ``(n,)``)
            or one column per class (multiclass, shape ``(n, k)``); required for classification.
        labels: the classes in score-column order (``model.classes_``); ``None`` = the sorted
            distinct values of ``y_true``. Binary: negative first.

    Returns:
        Binary ``roc.png``, ``precision_recall.png``, ``confusion_matrix.png``; multiclass
        ``confusion_matrix.png``, ``roc_ovr.png``; regression ``residuals.png``,
        ``predicted_vs_actual.png``.

    Raises:
        FigureError: an unknown task, a missing or mis-shaped array, or arrays of other lengths.
    """
    if task not in TASKS:
        raise FigureError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    truth = np.asarray(y_true)
    if truth.ndim != 1 or len(truth) == 0:
        raise FigureError(f"y_true must be a non-empty 1-D array, got shape {truth.shape}")
    if task == "regression":
        if y_pred is None:
            raise FigureError("regression figures need y_pred (the predicted values)")
        return _regression(truth.astype(float), _same_length(truth, y_pred, "y_pred").astype(float))
    if scores is None:
        raise FigureError(f"{task} figures need scores (predict_proba of the holdout rows)")
    score = _same_length(truth, scores, "scores")
    classes = list(labels) if labels is not None else sorted(np.unique(truth).tolist())
    if task == "binary":
        if score.ndim == 2 and score.shape[1] == 2:
            score = score[:, 1]
        if score.ndim != 1 or len(classes) != 2:
            raise FigureError(
                f"binary figures need 2 classes and 1-D positive-class scores, got "
                f"{len(classes)} classes {classes} and scores of shape {score.shape}"
            )
        pred = np.where(score >= 0.5, classes[1], classes[0]) if y_pred is None else y_pred
        return _binary(truth, score, _same_length(truth, pred, "y_pred"), classes)
    if score.ndim != 2 or score.shape[1] != len(classes):
        raise FigureError(
            f"multiclass scores need one column per class ({len(classes)}: {classes}), "
            f"got shape {score.shape}"
        )
    pred = np.asarray(classes)[score.argmax(axis=1)] if y_pred is None else y_pred
    return _multiclass(truth, score, _same_length(truth, pred, "y_pred"), classes)


def model_figures(
    model: Any,
    frame: Any,
    target: str,
    labels: Sequence[Any] | None = None,
    positive_class: Any = None,
) -> dict[str, bytes]:
    """The figures of a fitted model on a holdout frame; the task follows from the model.

    A classifier with two classes is ``binary``, with more ``multiclass``; anything else is
    ``regression``.

    Args:
        model: a fitted scikit-learn estimator or Pipeline.
        frame: the holdout rows, features and ``target``.
        target: the target column.
        labels: display names of ``model.classes_`` in that order (e.g. ``benign``,
            ``malignant``); ``None`` shows the classes themselves.
        positive_class: binary only, the class the curves are about (the spec's
            ``positive_class``); ``None`` = the model's second class.

    Returns:
        :func:`render_figures` of those rows.
    """
    from sklearn.base import is_classifier

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    if not is_classifier(model):
        return render_figures("regression", y, y_pred=model.predict(x))
    classes = list(model.classes_)
    names = list(labels) if labels is not None and len(labels) == len(classes) else classes
    # show the display names, keeping the score columns in the model's class order
    shown = dict(zip(classes, names, strict=True))
    truth = np.asarray([shown[v] for v in y])
    proba = model.predict_proba(x)
    task = "binary" if len(classes) == 2 else "multiclass"
    if task == "binary" and positive_class is not None and positive_class == classes[0]:
        names, proba = names[::-1], proba[:, ::-1]  # render_figures: negative first
    return render_figures(task, truth, scores=proba, labels=names)


def holdout_figures(
    candidate: CandidateRun,
    spec: DatasetSpec,
    search_params: SearchParams,
    labels: Sequence[Any] | None = None,
) -> dict[str, bytes]:
    """The candidate's figures on the fixed holdout, the rows evaluate scores it on.

    Args:
        candidate: the model file and dataset file the search step produced.
        spec: the dataset's spec (target, features, task, positive class).
        search_params: the ``search`` section (the holdout's fraction and seed).
        labels: display names of the model's classes, in ``classes_`` order.

    Returns:
        :func:`model_figures` of the candidate on the holdout.

    Raises:
        ModelPackageError: the candidate's model file does not load safely.
    """
    from slipway.packaging import loads_model
    from slipway.training.features import feature_frame
    from slipway.training.rows import holdout_rows

    holdout = holdout_rows(candidate.csv_path, spec, search_params)
    frame = feature_frame(holdout, spec).assign(**{spec.target: holdout[spec.target].to_numpy()})
    model = loads_model(candidate.model_path.read_bytes())
    return model_figures(model, frame, spec.target, labels, spec.positive_class)


def _same_length(truth: np.ndarray, values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if len(array) != len(truth):
        raise FigureError(f"{name} has {len(array)} rows but y_true has {len(truth)}")
    return array


def _binary(
    truth: np.ndarray, score: np.ndarray, pred: np.ndarray, classes: list[Any]
) -> dict[str, bytes]:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    positive = truth == classes[1]
    fpr, tpr, _ = roc_curve(positive, score)
    precision, recall, _ = precision_recall_curve(positive, score)
    ap = average_precision_score(positive, score)

    roc, ax = _figure("ROC curve", "false positive rate", "true positive rate")
    ax.plot(fpr, tpr, color="tab:blue", lw=2, label=f"AUC {auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    ax.legend(loc="lower right")

    pr, ax = _figure(f"Precision-recall ({classes[1]})", "recall", "precision")
    ax.step(recall, precision, where="post", color="tab:orange", lw=2, label=f"AP {ap:.3f}")
    ax.axhline(positive.mean(), color="grey", ls="--", lw=1, label="prevalence")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    return {
        "roc.png": _png(roc),
        "precision_recall.png": _png(pr),
        "confusion_matrix.png": _confusion(truth, pred, classes),
    }


def _multiclass(
    truth: np.ndarray, score: np.ndarray, pred: np.ndarray, classes: list[Any]
) -> dict[str, bytes]:
    from sklearn.metrics import auc, roc_curve

    fig, ax = _figure(
        "ROC curves, one class vs the rest", "false positive rate", "true positive rate"
    )
    for column, label in enumerate(classes):
        positive = truth == label
        if positive.all() or not positive.any():
            continue  # a class absent from (or alone in) the holdout has no curve
        fpr, tpr, _ = roc_curve(positive, score[:, column])
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.legend(loc="lower right", fontsize="small")
    return {"confusion_matrix.png": _confusion(truth, pred, classes), "roc_ovr.png": _png(fig)}


def _regression(truth: np.ndarray, pred: np.ndarray) -> dict[str, bytes]:
    residuals = truth - pred
    res, ax = _figure("Residuals", "predicted", "actual - predicted")
    ax.scatter(pred, residuals, s=12, alpha=0.6, color="tab:blue")
    ax.axhline(0, color="grey", ls="--", lw=1)

    pva, ax = _figure("Predicted vs actual", "actual", "predicted")
    ax.scatter(truth, pred, s=12, alpha=0.6, color="tab:green")
    low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", ls="--", lw=1, label="perfect")
    ax.legend(loc="upper left")
    return {"residuals.png": _png(res), "predicted_vs_actual.png": _png(pva)}


def _confusion(truth: np.ndarray, pred: np.ndarray, classes: list[Any]) -> bytes:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(truth, pred, labels=classes)
    fig, ax = _figure("Confusion matrix", "predicted", "true")
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=30 if len(classes) > 3 else 0)
    ax.set_yticks(ticks, [str(c) for c in classes])
    middle = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        ax.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if count > middle else "black",
        )
    return _png(fig)


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    # no "Software"/date metadata: the same arrays give the same bytes
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
