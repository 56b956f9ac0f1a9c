"""Multiclass and regression tables with categoricals and gaps, trained and judged end to end.

Small synthetic tables (seeded) go through ``train_candidate`` (grid search + a real MLflow run
in a SQLite store under ``tmp_path``) and ``evaluate_candidate`` (holdout metrics of the task,
the gate, the MLflow record), exactly as the search and evaluate steps call them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from slipway.config import load_settings
from slipway.data import DatasetRef, DatasetSpec, load_frame, split_dataset
from slipway.errors import ConfigError
from slipway.params import parse_params
from slipway.registry import CandidateRun
from slipway.training import evaluate_candidate, train_candidate
from slipway.training.metrics import score_model

ISLANDS = ["biscoe", "dream", "torgersen"]
CUTS = ["fair", "good", "ideal"]


def penguin_like(rows: int = 360) -> pd.DataFrame:
    """Three species told apart by island (categorical), size (with gaps) and a boolean."""
    rng = np.random.default_rng(3)
    species = rng.choice(["adelie", "chinstrap", "gentoo"], size=rows)
    centre = {"adelie": 38.0, "chinstrap": 48.0, "gentoo": 47.0}
    island = {"adelie": "torgersen", "chinstrap": "dream", "gentoo": "biscoe"}
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "bill_length": [centre[s] + rng.normal(0, 2.5) for s in species],
            "flipper": [(217.0 if s == "gentoo" else 192.0) + rng.normal(0, 6) for s in species],
            "island": [island[s] if rng.random() < 0.8 else rng.choice(ISLANDS) for s in species],
            "male": rng.choice(["yes", "no"], size=rows),
            "species": species,
        }
    )
    frame.loc[rng.random(rows) < 0.08, "bill_length"] = np.nan
    frame.loc[rng.random(rows) < 0.08, "island"] = None
    return frame


PENGUIN_SPEC = DatasetSpec.model_validate(
    {
        "name": "penguin-like",
        "task": "multiclass",
        "target": "species",
        "classes": ["adelie", "chinstrap", "gentoo"],
        "features": [
            {"name": "bill_length", "kind": "numeric", "nullable": True},
            {"name": "flipper", "kind": "numeric"},
            {"name": "island", "kind": "categorical", "nullable": True, "categories": ISLANDS},
            {"name": "male", "kind": "boolean"},
        ],
        "ignore": ["id"],
        "min_rows": 50,
    }
)


def diamond_like(rows: int = 400) -> pd.DataFrame:
    """Price grows with carat and cut; colour is noise."""
    rng = np.random.default_rng(5)
    carat = rng.uniform(0.2, 2.5, size=rows)
    cut = rng.choice(CUTS, size=rows)
    bonus = {"fair": 0.0, "good": 400.0, "ideal": 900.0}
    return pd.DataFrame(
        {
            "carat": carat,
            "cut": cut,
            "colour": rng.choice(["d", "e", "f"], size=rows),
            "depth": rng.integers(55, 70, size=rows),
            "price": 3000 * carat + np.array([bonus[c] for c in cut]) + rng.normal(0, 150, rows),
        }
    )


DIAMOND_SPEC = DatasetSpec.model_validate(
    {
        "name": "diamond-like",
        "task": "regression",
        "target": "price",
        "features": [
            {"name": "carat", "kind": "numeric"},
            {"name": "cut", "kind": "categorical", "categories": CUTS},
            {"name": "colour", "kind": "categorical", "categories": ["d", "e", "f"]},
            {"name": "depth", "kind": "integer"},
        ],
        "min_rows": 50,
    }
)

CANDIDATES = [
    {"estimator": "linear", "grid": {"scaler": ["standard", "robust"]}},
    {"estimator": "hist_gradient_boosting", "grid": {"scaler": ["none"], "max_iter": [50]}},
    {"estimator": "random_forest", "grid": {"scaler": ["none"], "n_estimators": [30]}},
]


@pytest.fixture
def settings(tmp_path):
    return load_settings(state_dir=tmp_path / "state", git_commit="0" * 40)


def write(frame: pd.DataFrame, tmp_path: Path, name: str) -> tuple[Path, DatasetRef]:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path, DatasetRef(
        name=name, version="v1", path=f"data/{name}/v1.csv", md5="f" * 32, rev="HEAD"
    )


def train_and_evaluate(frame, spec, raw_params, settings, tmp_path):
    params = parse_params(raw_params)
    path, ref = write(frame, tmp_path, spec.name)
    trained = train_candidate(path, ref, spec, params.search, settings)
    model_path = tmp_path / "model.skops"
    model_path.write_bytes(sio.dumps(trained.model))
    candidate = CandidateRun(trained.run_id, trained.model_uri, model_path, path, ref)
    evaluation = evaluate_candidate(candidate, spec, params.search, params.evaluate, settings)
    return trained, evaluation, path


def test_multiclass_with_categoricals_and_gaps(settings, tmp_path):
    raw = {
        "search": {"cv_folds": 3, "scoring": "f1_macro", "candidates": CANDIDATES},
        "evaluate": {"thresholds": {"f1_macro": 0.8, "log_loss": 0.6}},
    }
    trained, evaluation, path = train_and_evaluate(
        penguin_like(), PENGUIN_SPEC, raw, settings, tmp_path
    )
    assert trained.search.scoring == "f1_macro"
    assert trained.search.candidates_tried == 4
    assert trained.search.best_cv_score >= 0.85
    assert trained.train_metrics["f1_macro"] >= 0.85
    assert list(trained.model.feature_names_in_) == PENGUIN_SPEC.feature_names  # no id, no label

    decision = evaluation.decision
    assert set(decision.candidate) == {
        "f1_macro",
        "balanced_accuracy",
        "log_loss",
        "roc_auc_ovr",
        "accuracy",
    }
    assert decision.candidate["f1_macro"] >= 0.8
    assert decision.candidate["roc_auc_ovr"] >= 0.9
    assert decision.primary_metric == "f1_macro"
    assert decision.promote, decision.reason
    assert "no champion yet" in decision.reason
    curves = evaluation.curves
    assert curves.labels == ["adelie", "chinstrap", "gentoo"]
    assert sum(map(sum, curves.matrix)) == evaluation.holdout_rows
    assert curves.fpr == []  # no ROC curve for three classes
    assert evaluation.residuals is None

    # an unknown island and a gap in every nullable column still get a prediction
    x = load_frame(path, PENGUIN_SPEC).head(3).drop(columns=["species", "id"])
    from slipway.training import feature_frame

    odd = feature_frame(x, PENGUIN_SPEC).assign(island=["atlantis", "", ""], bill_length=np.nan)
    proba = trained.model.predict_proba(odd)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_regression_with_categoricals(settings, tmp_path):
    from slipway.training import mlflow_client
    from slipway.training.evaluate import RESIDUALS_ARTIFACT

    raw = {
        "search": {"cv_folds": 3, "candidates": CANDIDATES},
        "evaluate": {"primary_metric": "rmse", "thresholds": {"rmse": 400.0, "r2": 0.9}},
    }
    frame = diamond_like()
    trained, evaluation, path = train_and_evaluate(frame, DIAMOND_SPEC, raw, settings, tmp_path)
    assert trained.search.scoring == "neg_root_mean_squared_error"  # the regression default
    assert -trained.search.best_cv_score < 400.0
    decision = evaluation.decision
    assert set(decision.candidate) == {"rmse", "mae", "r2"}
    assert decision.candidate["r2"] >= 0.9
    assert decision.candidate["rmse"] <= 400.0
    assert decision.candidate["mae"] <= decision.candidate["rmse"]
    assert decision.promote, decision.reason
    assert evaluation.curves is None  # nothing for the ClassificationMetrics artifact
    _, holdout = split_dataset(load_frame(path, DIAMOND_SPEC), 0.2, 42, "price")
    assert evaluation.residuals.actual == pytest.approx(holdout["price"].tolist())
    assert len(evaluation.residuals.predicted) == len(holdout)
    assert score_model(trained.model, holdout, DIAMOND_SPEC) == decision.candidate

    client = mlflow_client(settings.tracking_uri)
    run = client.get_run(trained.run_id)
    assert run.data.metrics["holdout_rmse"] == decision.candidate["rmse"]
    assert run.data.tags["slipway.primary_metric"] == "rmse"
    assert run.data.params["dataset.task"] == "regression"
    assert run.inputs.dataset_inputs[0].dataset.name == "diamond-like-v1"
    local = client.download_artifacts(trained.run_id, RESIDUALS_ARTIFACT, str(tmp_path))
    assert len(json.loads(Path(local).read_text())["actual"]) == len(holdout)


def test_a_scoring_that_does_not_fit_the_task_fails_before_any_mlflow_run(settings, tmp_path):
    params = parse_params({"search": {"scoring": "roc_auc", "candidates": CANDIDATES}})
    path, ref = write(diamond_like(60), tmp_path, "diamond-like")
    with pytest.raises(ConfigError, match="'roc_auc' does not fit a regression dataset"):
        train_candidate(path, ref, DIAMOND_SPEC, params.search, settings)
    assert not (settings.state_dir / "mlflow.db").exists()
    bad_grid = parse_params(
        {"search": {"candidates": [{"estimator": "linear", "grid": {"C": [1]}}]}}
    )
    with pytest.raises(ConfigError, match="grid key 'C' of linear is not a parameter of Ridge"):
        train_candidate(path, ref, DIAMOND_SPEC, bad_grid.search, settings)
    assert not (settings.state_dir / "mlflow.db").exists()
