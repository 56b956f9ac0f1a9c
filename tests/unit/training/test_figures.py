"""The evaluation figures: valid PNGs of the expected size for each task, clear errors otherwise."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from slipway.training.figures import DPI, FIGSIZE, FigureError, model_figures, render_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(7)


def _assert_pngs(figures: dict[str, bytes], names: list[str]) -> None:
    assert list(figures) == names
    for name, png in figures.items():
        assert png.startswith(PNG_MAGIC), name
        assert len(png) > 5_000, (name, len(png))  # axes, labels and a curve, not an empty canvas
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI), name
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        colours = len(np.unique(pixels, axis=0))
        assert colours > 20, (name, colours)
        assert (pixels < 200).any(axis=1).mean() > 0.005, name  # something dark is drawn


def _binary_arrays(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    y = RNG.integers(0, 2, n)
    return y, np.clip(0.55 * y + 0.5 * RNG.random(n), 0, 1)


def test_binary_gives_roc_precision_recall_and_confusion_matrix() -> None:
    y, score = _binary_arrays()
    figures = render_figures("binary", y, scores=score, labels=[0, 1])
    _assert_pngs(figures, ["roc.png", "precision_recall.png", "confusion_matrix.png"])


def test_binary_figures_depend_on_the_data_and_are_reproducible() -> None:
    y, score = _binary_arrays()
    first = render_figures("binary", y, scores=score)
    assert render_figures("binary", y, scores=score) == first
    other = render_figures("binary", y, scores=1 - score)
    assert other["roc.png"] != first["roc.png"]
    assert other["confusion_matrix.png"] != first["confusion_matrix.png"]


def test_binary_accepts_both_predict_proba_columns_and_string_labels() -> None:
    y, score = _binary_arrays()
    names = np.array(["benign", "malignant"])[y]
    two_columns = np.column_stack([1 - score, score])
    figures = render_figures("binary", names, scores=two_columns, labels=["benign", "malignant"])
    assert figures == render_figures("binary", names, scores=score, labels=["benign", "malignant"])


def test_multiclass_gives_confusion_matrix_and_one_vs_rest_roc() -> None:
    y = RNG.integers(0, 3, 150)
    scores = RNG.dirichlet([1, 1, 1], 150) + np.eye(3)[y]
    scores /= scores.sum(axis=1, keepdims=True)
    labels = ["setosa", "versicolor", "virginica"]
    figures = render_figures("multiclass", np.array(labels)[y], scores=scores, labels=labels)
    _assert_pngs(figures, ["confusion_matrix.png", "roc_ovr.png"])


def test_regression_gives_residuals_and_predicted_vs_actual() -> None:
    y = RNG.normal(10, 3, 120)
    figures = render_figures("regression", y, y_pred=y + RNG.normal(0, 1, 120))
    _assert_pngs(figures, ["residuals.png", "predicted_vs_actual.png"])


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("ranking", {"scores": [0.1, 0.9]}, r"unknown task 'ranking'; expected one of"),
        ("regression", {}, r"regression figures need y_pred"),
        ("binary", {}, r"binary figures need scores"),
        ("binary", {"scores": [0.1, 0.9, 0.3]}, r"scores has 3 rows but y_true has 2"),
        ("binary", {"scores": [0.1, 0.9], "labels": [0, 1, 2]}, r"need 2 classes .* 3 classes"),
        ("multiclass", {"scores": [0.1, 0.9], "labels": [0, 1]}, r"one column per class \(2"),
    ],
)
def test_bad_arrays_are_refused_with_what_was_wrong(task, kwargs, message) -> None:
    with pytest.raises(FigureError, match=message) as error:
        render_figures(task, [0, 1], **kwargs)
    assert isinstance(error.value, ValueError)


def test_empty_truth_is_refused() -> None:
    with pytest.raises(FigureError, match=r"non-empty 1-D array, got shape \(0,\)"):
        render_figures("binary", [], scores=[])


def _frame(y: np.ndarray) -> pd.DataFrame:
    x = RNG.normal(size=(len(y), 3)) + y[:, None]
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "target": y})


def test_model_figures_follow_the_model_task() -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    binary = _frame(RNG.integers(0, 2, 120))
    fitted = LogisticRegression().fit(binary[["a", "b", "c"]], binary["target"])
    assert list(model_figures(fitted, binary, "target", ["no", "yes"])) == [
        "roc.png",
        "precision_recall.png",
        "confusion_matrix.png",
    ]
    three = _frame(RNG.integers(0, 3, 150))
    fitted = LogisticRegression().fit(three[["a", "b", "c"]], three["target"])
    assert list(model_figures(fitted, three, "target")) == ["confusion_matrix.png", "roc_ovr.png"]
    numbers = _frame(RNG.normal(size=100))
    fitted = LinearRegression().fit(numbers[["a", "b", "c"]], numbers["target"])
    assert list(model_figures(fitted, numbers, "target")) == [
        "residuals.png",
        "predicted_vs_actual.png",
    ]


def test_model_figures_name_the_classes_with_the_given_labels() -> None:
    from sklearn.linear_model import LogisticRegression

    frame = _frame(RNG.integers(0, 2, 120))
    fitted = LogisticRegression().fit(frame[["a", "b", "c"]], frame["target"])
    named = model_figures(fitted, frame, "target", ["benign", "malignant"])
    plain = model_figures(fitted, frame, "target")
    # same curves, other tick labels on the confusion matrix and the PR title
    assert named["roc.png"] == plain["roc.png"]
    assert named["confusion_matrix.png"] != plain["confusion_matrix.png"]
