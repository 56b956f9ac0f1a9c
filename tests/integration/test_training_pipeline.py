"""The compiled training pipeline, run for real under kfp.local through the CLI.

The runs share one state folder (one MLflow store, one model store, one DVC remote) in order:
first run promotes, the same data again does not, a worse candidate does not, a poisoned dataset
stops at validation. Each run is a ``slipway run`` subprocess, exactly what ``make run`` starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from slipway.config import load_settings
from slipway.data.table import DATASET_VERSIONS, build_dataset, write_csv
from slipway.packaging.store import LocalModelStore
from tests.support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = REPO


def run_cli(
    state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    full_env.update({"SLIPWAY_STATE_DIR": str(state), "COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "slipway", *args],
        cwd=PROJECT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def first_run(state):
    result = run_cli(state, "run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def registry(state: Path):
    from slipway.registry.client import get_client

    settings = load_settings(state_dir=state)
    return get_client(settings.tracking_uri), settings


def champion(state: Path):
    from slipway.registry.client import get_alias_version

    client, _ = registry(state)
    return get_alias_version(client, "slipway")


def test_first_run_promotes_and_links_everything(first_run, state):
    out = first_run.stdout
    assert "PROMOTED" in out
    assert "NOT PROMOTED" not in out
    client, _ = registry(state)
    version = champion(state)
    assert version is not None
    code = version.tags["version_code"]
    assert f"version code     {code}" in out
    assert version.tags["dataset_version"] == "v2"
    pointer = yaml.safe_load((PROJECT / "data/breast-cancer/v2.csv.dvc").read_text())
    assert version.tags["dataset_md5"] == pointer["outs"][0]["md5"]
    commit = version.tags["git_commit"].removesuffix("-dirty")
    # the code version is a real commit of this repository (HEAD may have moved since the run)
    assert (
        subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=PROJECT).returncode
        == 0
    )
    run_id = version.tags["mlflow_run_id"]
    assert run_id.startswith(code.split("-")[-1])
    assert f"MLflow run       {run_id}" in out

    package = state / "store" / "models" / "slipway" / code
    manifest = json.loads((package / "manifest.json").read_text())
    digest = hashlib.sha256((package / "model.skops").read_bytes()).hexdigest()
    assert manifest["files"]["model.skops"]["sha256"] == digest
    assert manifest["mlflow_run_id"] == run_id
    assert manifest["dataset"]["md5"] == pointer["outs"][0]["md5"]
    assert len(manifest["features"]) == 30
    assert manifest["training_stats"]["mean_radius"]["edges"]

    run = client.get_run(run_id)
    inputs = run.inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["breast-cancer-v2"]
    assert inputs[0].dataset.digest == pointer["outs"][0]["md5"][:10]
    assert run.data.tags["slipway.decision"] == "promote"
    assert run.data.tags["mlflow.source.git.commit"] == version.tags["git_commit"]
    assert run.data.metrics["holdout_roc_auc"] >= 0.95
    assert "cv_roc_auc_mean" in run.data.metrics
    assert run.data.params["best.estimator"] in {"LogisticRegression", "RandomForestClassifier"}


def test_the_run_has_figures_and_an_html_report_here_in_mlflow_and_as_kfp_artifacts(
    first_run, state, tmp_path
):
    from tests.support.browser import chromium_or_fail, rendered_dom, screenshot

    out = first_run.stdout
    run_id = out.split("MLflow run")[1].split()[0]
    code = champion(state).tags["version_code"]
    page = state / "reports" / f"{run_id}.html"
    assert f"run report       {page}" in out
    html = page.read_text()
    assert f"<h2>PROMOTED as {code}</h2>" in html
    assert "passed, no violations (569 rows)" in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3

    client, _ = registry(state)
    logged = {a.path for a in client.list_artifacts(run_id)}
    assert {"figures", "validation", "report.html"} <= logged
    assert sorted(a.path for a in client.list_artifacts(run_id, "figures")) == [
        "figures/confusion_matrix.png",
        "figures/precision_recall.png",
        "figures/roc.png",
    ]
    roc = Path(client.download_artifacts(run_id, "figures/roc.png", str(tmp_path)))
    assert roc.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert roc.stat().st_size > 5_000

    # the KFP HTML artifacts: evaluate's before the version code exists, promote's with it
    (promoted,) = [
        p for p in (state / "kfp").glob("*/promote/run_report") if run_id in p.read_text()
    ]
    evaluated = promoted.parent.parent / "evaluate" / "run_report"
    assert "<h2>APPROVED for promotion</h2>" in evaluated.read_text()
    assert code not in evaluated.read_text()
    assert promoted.read_text() == html

    chromium_or_fail()
    shot = screenshot(page, tmp_path / "report.png")
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    dom = rendered_dom(page)
    assert re.search(rf'id="decision">\s*<h2>PROMOTED as {code}</h2>', dom)


def _compiled_task_names() -> set[str]:
    """Every task of the compiled pipeline, in nested DAGs too."""
    spec = next(yaml.safe_load_all((REPO / "pipelines" / "training_pipeline.yaml").read_text()))
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {
        name
        for dag in dags
        for name, task in dag["tasks"].items()
        if "dag" not in spec["components"][task["componentRef"]["name"]]
    }


def test_output_is_one_line_per_task_then_the_summary_and_the_log_holds_the_rest(first_run):
    lines = first_run.stdout.splitlines()
    # the budget is 25 lines besides one line per task of the compiled pipeline (the original
    # 30 lines for its 5 tasks); search-plan and search-shard show as skipped with one shard
    tasks = _compiled_task_names()
    assert len(tasks) == 7, tasks
    assert len(lines) <= 25 + len(tasks), first_run.stdout
    # (skipped in the same instant: in either order)
    assert sorted(line.split()[1] for line in lines if line.startswith("- ")) == [
        "search-plan",
        "search-shard",
    ]
    assert "\x1b[" not in first_run.stdout + first_run.stderr  # not a terminal: plain text
    for task in ("pull-data", "validate-data", "search", "evaluate", "promote"):
        assert len([line for line in lines if line.startswith(f"✓ {task} ")]) == 1, task
    logs = [line.split()[-1] for line in lines if line.startswith("task logs ")]
    assert len(logs) == 1
    log = Path(logs[0])
    assert log.name == "pipeline.log"
    logged = log.read_text()
    assert "Executing task 'search'" in logged
    assert "Task 'search' outputs:" in logged
    assert "Executing task" not in first_run.stdout


def test_promotion_rerun_for_the_same_run_creates_nothing_new(first_run, state):
    from slipway.data import spec_from_metadata
    from slipway.data.versioning import DatasetRef
    from slipway.params import load_params
    from slipway.registry.promotion import CandidateRun, promote_candidate

    client, settings = registry(state)
    before = champion(state)
    run_dir = max((state / "kfp").glob("slipway-training-*"), key=lambda p: p.stat().st_mtime)
    search_out = json.loads((run_dir / "search" / "executor_output.json").read_text())[
        "parameterValues"
    ]
    dataset_meta = json.loads((run_dir / "pull-data" / "executor_output.json").read_text())
    meta = dataset_meta["artifacts"]["dataset"]["artifacts"][0]["metadata"]
    params = load_params(PROJECT / "params.yaml")
    candidate = CandidateRun(
        run_id=search_out["run_id"],
        model_uri=search_out["model_uri"],
        model_path=run_dir / "search" / "model",
        csv_path=run_dir / "pull-data" / "dataset",
        dataset=DatasetRef.from_metadata(meta),
    )
    again = promote_candidate(
        candidate,
        str(before.version),
        {"roc_auc": 1.0},
        spec_from_metadata(meta),
        params.search,
        settings,
    )
    assert again.created is False
    assert again.version_code == before.tags["version_code"]
    assert len(client.search_model_versions("name='slipway'")) == 1
    assert len(LocalModelStore(state / "store" / "models").list_versions("slipway")) == 1


def test_same_data_again_is_not_promoted(first_run, state):
    before = champion(state)
    result = run_cli(state, "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOT PROMOTED: not better than the champion" in result.stdout
    assert champion(state).version == before.version
    assert len(LocalModelStore(state / "store" / "models").list_versions("slipway")) == 1


def test_worse_candidate_is_not_promoted(first_run, state, tmp_path):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["search"]["candidates"] = [
        {
            "estimator": "gradient_boosting",
            "grid": {"scaler": ["none"], "n_estimators": [1], "max_depth": [1]},
        }
    ]
    params["evaluate"]["thresholds"] = {}  # only the champion comparison can stop it
    worse = tmp_path / "params.yaml"
    worse.write_text(yaml.safe_dump(params))
    before = champion(state)
    result = run_cli(state, "run", "--params", str(worse))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NOT PROMOTED: not better than the champion" in result.stdout
    assert champion(state).version == before.version


def _poisoned_dvc_project(root: Path, remote: Path) -> None:
    from dvc.repo import Repo

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(root)], check=True)
    Repo.init(str(root))
    frame = build_dataset(DATASET_VERSIONS["v2"]).drop(columns=["mean_area"]).head(80).copy()
    frame.loc[3, "mean_radius"] = float("nan")
    frame.loc[4, "diagnosis"] = 7
    path = write_csv(frame, root / DATASET_VERSIONS["v2"].path)
    # the spec is committed beside the pointer: pull-data reads both at the run's revision
    shutil.copyfile(PROJECT / "data/breast-cancer/dataset.yaml", path.parent / "dataset.yaml")
    with Repo(str(root)) as repo:
        repo.add([str(path)])
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "poisoned"], cwd=root, check=True)


def test_poisoned_dataset_stops_at_validation(first_run, state, tmp_path):
    from slipway.data.versioning import push_datasets

    project, remote = tmp_path / "poisoned", tmp_path / "remote"
    _poisoned_dvc_project(project, remote)
    push_datasets(project, str(remote))
    client, _ = registry(state)
    before = champion(state)
    runs_before = len(client.search_runs([client.get_experiment_by_name("slipway").experiment_id]))
    result = run_cli(
        state, "run", env={"SLIPWAY_DVC_REPO": str(project), "SLIPWAY_DVC_REMOTE_URL": str(remote)}
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for violation in ("column_in_dataframe", "not_nullable", "isin((0, 1))", "fewer than 100 rows"):
        assert violation in output, violation
    assert "Nothing was promoted" in output
    assert "✗ validate-data" in result.stdout
    assert "Task logs: " in result.stderr
    assert champion(state).version == before.version
    assert (
        len(client.search_runs([client.get_experiment_by_name("slipway").experiment_id]))
        == runs_before
    )


def test_bad_input_fails_before_side_effects(tmp_path):
    fresh = tmp_path / "never-created"
    unknown = run_cli(fresh, "run", "--dataset-version", "v9")
    assert unknown.returncode == 1
    assert "unknown dataset version 'v9'; known versions: v1, v2" in unknown.stderr
    bad_params = tmp_path / "params.yaml"
    bad_params.write_text("search:\n  cv_folds: one\n  candidates: []\n")
    malformed = run_cli(fresh, "run", "--params", str(bad_params))
    assert malformed.returncode == 1
    assert "search.cv_folds='one'" in malformed.stderr
    unreachable = run_cli(fresh, "run", env={"SLIPWAY_DVC_REMOTE_URL": "/dev/null/remote"})
    assert unreachable.returncode == 1
    assert "DVC remote folder '/dev/null/remote' cannot be created" in unreachable.stderr
    for result in (unknown, malformed, unreachable):
        assert "Traceback" not in result.stderr
    assert not fresh.exists()
