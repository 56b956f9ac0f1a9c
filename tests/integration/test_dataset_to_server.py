"""Bring your own dataset, end to end: ``slipway data add`` → ``slipway run`` → ``slipway serve``.

Issue 10's integration test, driven only through the CLI as a user would:

1. a fresh CSV with string categoricals (written here) is added to a new DVC project with
   ``slipway data add`` (copied, tracked, pushed, a draft spec inferred), the user's
   ``data/<name>/params.yaml`` beside it, all committed;
2. ``slipway run --dataset NAME`` runs the compiled YAML under kfp.local on a temp state folder
   and promotes the candidate (registry model ``slipway-<name>``);
3. ``slipway serve --champion`` (``make serve``) serves the champion from the state folder's EFS
   folder, and an OIP request with string categoricals is answered with the champion's own
   predictions.

The shipped penguins dataset goes the same way (``slipway run --dataset penguins`` on this
checkout's DVC pointers). Diamonds through the pipeline (53,940 rows x its grid) is too slow for a
test run here: the shipped diamonds table is promoted in process and served to the official
clients in ``test_oip_clients_tasks.py`` instead.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from slipway.config import load_settings
from slipway.data import feature_frame, load_dataset_spec
from slipway.packaging import load_package, open_model_store
from tests.integration.test_training_pipeline import run_cli
from tests.support import REPO
from tests.support.serving import serve_process
from tests.support.tasks import churn_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# only what this dataset changes: a small grid, floors a 80-row holdout can meet
CHURN_PARAMS = {
    "search": {
        "cv_folds": 3,
        "candidates": [
            {"estimator": "logistic_regression", "grid": {"scaler": ["standard"], "C": [1.0]}}
        ],
    },
    "evaluate": {"thresholds": {"roc_auc": 0.85, "f1": 0.6, "recall": 0.5}},
}


def git(project: Path, *args: str) -> None:
    base = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*base, *args], cwd=project, check=True, capture_output=True)


def infer(base: str, model: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def metadata(base: str, model: str) -> dict:
    """The model metadata, once the model is loaded (the server loads it after it is live)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5):
                break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline, "the model did not become ready in 60 s"
            time.sleep(0.2)
    with urllib.request.urlopen(f"{base}/v2/models/{model}", timeout=30) as response:
        return json.loads(response.read())


def champion_package(state: Path, model: str):
    """The champion's package (its scikit-learn model and manifest), from the model store."""
    from slipway.registry import champion_version_code, get_client

    settings = load_settings(state_dir=state)
    found = champion_version_code(get_client(settings.tracking_uri), model)
    assert found is not None, f"{model} has no champion"
    version = str(found[1])
    pipeline, manifest = load_package(open_model_store(settings), model, version)
    return version, pipeline, manifest


def column_body(frame: pd.DataFrame, manifest: dict) -> dict:
    """One JSON tensor per feature: strings for categoricals, null when missing."""
    inputs = []
    for feature in manifest["features"]:
        values = frame[feature["name"]].tolist()
        if feature["kind"] == "categorical":
            data, datatype = [None if v == "" else v for v in values], "BYTES"
        elif feature["kind"] == "boolean":
            data, datatype = [None if v != v else bool(v) for v in values], "BOOL"
        else:
            data, datatype = [None if v != v else float(v) for v in values], "FP64"
        inputs.append(
            {"name": feature["name"], "shape": [len(values)], "datatype": datatype, "data": data}
        )
    return {"inputs": inputs}


def serve_champion(root: Path, model: str, *options: str):
    """``slipway serve --champion`` of ``model`` (what ``make serve`` runs) on ``root/state``."""
    settings = load_settings(state_dir=root / "state")
    efs = Path(settings.efs_root)
    return serve_process(root, "--champion", *options, efs=efs, model=model, version="")


def test_a_new_csv_with_string_categoricals_is_added_trained_promoted_and_served(tmp_path):
    project, remote = tmp_path / "project", tmp_path / "remote"
    project.mkdir()
    git(project, "init", "-q")
    from dvc.repo import Repo

    Repo.init(str(project)).close()
    source = tmp_path / "in" / "churn.csv"
    source.parent.mkdir()
    table = churn_table()
    table.to_csv(source, index=False)
    state = tmp_path / "state"
    env = {"SLIPWAY_DVC_REMOTE_URL": str(remote)}

    added = run_cli(
        state,
        "data",
        "add",
        str(source),
        "--dataset",
        "churn",
        "--target",
        "churned",
        env={**env, "SLIPWAY_PROJECT_DIR": str(project)},
    )
    assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    spec = load_dataset_spec(project / "data/churn/dataset.yaml")
    assert spec.task == "binary"
    kinds = {f.name: f.kind for f in spec.features}
    assert (kinds["plan"], kinds["region"]) == ("categorical", "categorical")
    (project / "data/churn/params.yaml").write_text(yaml.safe_dump(CHURN_PARAMS))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "add the churn dataset")

    run = run_cli(state, "run", "--dataset", "churn", env={**env, "SLIPWAY_DVC_REPO": str(project)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PROMOTED" in run.stdout
    assert "NOT PROMOTED" not in run.stdout

    version, pipeline, manifest = champion_package(state, "slipway-churn")
    assert manifest["task"] == "binary"
    assert manifest["classes"] == ["no", "yes"]
    rows = feature_frame(table.sample(20, random_state=1), spec)
    with serve_champion(tmp_path, "slipway-churn") as (_, base, _, _):
        meta = metadata(base, "slipway-churn")
        assert meta["versions"] == [version]
        assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
            "plan": "BYTES",
            "region": "BYTES",
            "tenure_months": "FP64",
            "monthly_spend": "FP64",
        }
        answer = infer(base, "slipway-churn", column_body(rows, manifest))
    out = {o["name"]: o for o in answer["outputs"]}
    assert answer["model_version"] == version
    assert out["label"]["datatype"] == "BYTES"
    assert out["label"]["data"] == pipeline.predict(rows).tolist()
    positive = manifest["classes"].index(manifest["positive_class"])
    np.testing.assert_allclose(
        out["probability"]["data"], pipeline.predict_proba(rows)[:, positive], atol=1e-6
    )


def test_penguins_through_the_compiled_pipeline_is_promoted_and_served(tmp_path):
    from slipway.data.shipped import penguins_frame

    state = tmp_path / "state"
    run = run_cli(state, "run", "--dataset", "penguins")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PROMOTED" in run.stdout
    assert "NOT PROMOTED" not in run.stdout

    version, pipeline, manifest = champion_package(state, "slipway-penguins")
    assert manifest["task"] == "multiclass"
    spec = load_dataset_spec(REPO / "data/penguins/dataset.yaml")
    table = penguins_frame()  # what v1 is: the birds as palmerpenguins ships them
    gaps = table[table.isna().any(axis=1)]  # the birds with a missing measurement or sex
    rows = feature_frame(pd.concat([gaps, table.sample(20, random_state=2)]), spec)
    assert rows.isna().any().any()  # null goes through for nullable features
    # the model named by the dataset (SLIPWAY_MODEL_NAME stays the project's "slipway")
    with serve_champion(tmp_path, "slipway", "--dataset", "penguins") as (_, base, _, _):
        meta = metadata(base, "slipway-penguins")
        answer = infer(base, "slipway-penguins", column_body(rows, manifest))
    assert meta["versions"] == [version]
    assert meta["outputs"][1] == {
        "name": "probability",
        "datatype": "FP64",
        "shape": [-1, len(manifest["classes"])],
    }
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["island"] == "BYTES"
    out = {o["name"]: o for o in answer["outputs"]}
    assert out["label"]["data"] == pipeline.predict(rows).tolist()
    proba = np.asarray(out["probability"]["data"]).reshape(out["probability"]["shape"])
    np.testing.assert_allclose(proba, pipeline.predict_proba(rows), atol=1e-5)


def test_diamonds_through_the_compiled_pipeline_is_promoted_and_served(tmp_path):
    # the shipped regression table (53,940 rows, three categoricals); the committed grid takes
    # minutes on 2 cores, so the run uses its params with one candidate and 2 folds (--params
    # names a whole file), its thresholds unchanged
    from slipway.data import merge_params
    from slipway.data.shipped import diamonds_frame

    params = merge_params(
        yaml.safe_load((REPO / "params.yaml").read_text()),
        yaml.safe_load((REPO / "data/diamonds/params.yaml").read_text()),
    )
    params["search"]["cv_folds"] = 2
    params["search"]["candidates"] = [
        {"estimator": "hist_gradient_boosting", "grid": {"max_iter": [200], "max_leaf_nodes": [31]}}
    ]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    state = tmp_path / "state"
    run = run_cli(state, "run", "--dataset", "diamonds", "--params", str(params_file))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PROMOTED" in run.stdout
    assert "NOT PROMOTED" not in run.stdout
    assert "rmse" in run.stdout

    version, pipeline, manifest = champion_package(state, "slipway-diamonds")
    assert manifest["task"] == "regression"
    spec = load_dataset_spec(REPO / "data/diamonds/dataset.yaml")
    rows = feature_frame(diamonds_frame().sample(25, random_state=4), spec)
    with serve_champion(tmp_path, "slipway-diamonds") as (_, base, _, _):
        meta = metadata(base, "slipway-diamonds")
        answer = infer(base, "slipway-diamonds", column_body(rows, manifest))
    assert meta["versions"] == [version]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["cut"] == "BYTES"
    out = {o["name"]: o for o in answer["outputs"]}
    np.testing.assert_allclose(out["value"]["data"], pipeline.predict(rows), rtol=1e-6)
