"""The run report as a person sees it: rendered by Debian's headless Chromium, screenshot checked.

The page comes from the real code on a real small evaluation: a scikit-learn Pipeline fitted on
the bundled dataset, scored on the fixed holdout by ``score_model``, judged by
``decide_promotion`` with the project's ``params.yaml``, its figures drawn by ``model_figures``.
The end-to-end run's own report is rendered the same way in test_training_pipeline.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipway.data import breast_cancer_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset, split_dataset
from slipway.params import load_params
from slipway.training import (
    RunReport,
    decide_promotion,
    model_figures,
    render_report,
    score_model,
    write_report,
)
from tests.support import REPO
from tests.support.browser import (
    WINDOW,
    chromium_or_fail,
    rendered_dom,
    screenshot,
)

pytestmark = pytest.mark.integration

PROMOTED_BG = (0xE3, 0xF9, 0xE5)  # .decision.promoted in the report's CSS
KEEP_BG = (0xFF, 0xF4, 0xD6)  # .decision.keep
ROC_BLUE = (0x1F, 0x77, 0xB4)  # matplotlib tab:blue, the ROC curve


@pytest.fixture(scope="session")
def chromium() -> Path:
    return chromium_or_fail()


@pytest.fixture(scope="module")
def evaluation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = load_params(REPO / "params.yaml")
    frame = build_dataset(DATASET_VERSIONS["v2"])
    target = params.data.target
    train, holdout = split_dataset(
        frame, params.search.holdout_fraction, params.search.seed, target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(train.drop(columns=[target]), train[target])
    metrics = score_model(model, holdout, breast_cancer_spec())
    figures = model_figures(model, holdout, target, ["benign", "malignant"])
    return params, metrics, figures, len(holdout)


def _page(tmp_path: Path, evaluation, champion: dict | None, version_code: str | None) -> Path:
    params, metrics, figures, rows = evaluation
    decision = decide_promotion(
        metrics, champion, params.evaluate, "4", "v4-20261101-abcdef12", task="binary"
    )
    report = RunReport(
        run_id="0123456789abcdef",
        model_name="slipway",
        dataset="v2@1a2b3c4d (data/breast-cancer/v2.csv)",
        validation="# Data validation: v2@1a2b3c4d\n\nRows: 569. Result: **passed**, no violations.\n",
        candidate=metrics,
        champion=champion or {},
        champion_version="v4-20261101-abcdef12" if champion else None,
        decision="promote" if decision.promote else "keep",
        reason=decision.reason,
        version_code=version_code if decision.promote else None,
        registry_version="5" if decision.promote and version_code else None,
        holdout_rows=rows,
        figures=figures,
    )
    return write_report(render_report(report), tmp_path / "report.html")


def _pixels(png: Path) -> np.ndarray:
    with Image.open(png) as image:
        assert image.size == WINDOW
        return np.asarray(image.convert("RGB"))


def _count(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 3) -> int:
    return int((np.abs(pixels.astype(int) - colour) <= tolerance).all(axis=-1).sum())


def test_a_promoted_run_renders_with_its_decision_metrics_and_figures(
    chromium, evaluation, tmp_path
) -> None:
    page = _page(tmp_path, evaluation, None, "v5-20261201-01234567")
    pixels = _pixels(screenshot(page, tmp_path / "shot.png"))

    # not blank: many colours, a good share of the page is not white
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 200, len(colours)
    assert (pixels < 250).any(axis=-1).mean() > 0.05
    # the decision box is drawn in the promoted colour near the top; the ROC curve below it
    assert _count(pixels[:400], PROMOTED_BG) > 20_000
    assert _count(pixels[:400], KEEP_BG) == 0
    assert _count(pixels[400:], ROC_BLUE, tolerance=8) > 300

    dom = rendered_dom(page)
    decision = re.search(
        r'<section class="decision promoted" id="decision">(.*?)</section>', dom, re.S
    )
    assert decision is not None, dom[:2000]
    assert "PROMOTED as v5-20261201-01234567" in decision[1]
    assert "no champion yet and every threshold holds" in decision[1]
    assert f"{evaluation[1]['roc_auc']:.4f}" in dom
    assert len(re.findall(r'<img alt="[a-z_]+\.png" src="data:image/png;base64,', dom)) == 3


def test_a_kept_champion_renders_as_not_promoted(chromium, evaluation, tmp_path) -> None:
    better = {name: (1.0 if name != "log_loss" else 0.0) for name in evaluation[1]}
    page = _page(tmp_path, evaluation, better, None)
    pixels = _pixels(screenshot(page, tmp_path / "shot.png"))
    assert _count(pixels[:400], KEEP_BG) > 20_000
    assert _count(pixels[:400], PROMOTED_BG) == 0

    dom = rendered_dom(page)
    assert re.search(r'<section class="decision keep" id="decision">\s*<h2>NOT PROMOTED', dom)
    assert "not better than the champion" in dom
    assert "champion (v4-20261101-abcdef12)" in dom
