"""The compiled pipeline with ``search_shards=2`` under kfp.local: fan-out, fan-in, child runs.

One pipeline run fits the default grid of ``params.yaml`` in two search-shard tasks; the same
grid searched in one process on the same pulled CSV must give the same best params and CV
score. A second run asks for more shards than fits and must fail in search-plan, naming the
value and the limit, without leaving an MLflow run behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.config import load_settings
from tests.support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# run_training with search_shards=N, printed as JSON: what `slipway run` does, in a subprocess
RUN = """
import dataclasses, json, sys
from slipway.config import load_settings
from slipway.orchestration import resolve_request, run_training
settings = load_settings()
request = dataclasses.replace(resolve_request(settings), search_shards=int(sys.argv[1]))
result = run_training(settings, request)
print(json.dumps({"run_id": result.run_id, "failure": str(result.failure or ""),
                  "failed_task": result.failure and result.failure.failed_task,
                  "log": str(result.log)}))
"""


def run_sharded(state: Path, shards: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env["SLIPWAY_STATE_DIR"] = str(state)
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(shards)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def two_shards(state) -> dict:
    result = run_sharded(state, 2)
    assert result["failure"] == "", result
    return result


def test_two_shards_equal_one_search_and_every_candidate_is_a_child_run(two_shards, state):
    from slipway.data import DatasetRef, spec_from_metadata
    from slipway.params import load_params
    from slipway.training.search import fit_grid_search
    from slipway.training.tracking import PARENT_RUN_TAG, mlflow_client

    settings = load_settings(state_dir=state)
    client = mlflow_client(settings.tracking_uri)
    parent = client.get_run(two_shards["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.shards"] == "2"
    assert parent.data.params["search.strategy"] == "grid"
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["breast-cancer-v2"]
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id, "shards")) == [
        "shards/shard-0.json",
        "shards/shard-1.json",
    ]

    # both shard tasks ran, each once, and the reduce ran after them
    log = Path(two_shards["log"]).read_text()
    assert log.count("Executing task 'search-shard'") == 2
    assert log.count("Executing task 'search-plan'") == 1
    assert log.rindex("Executing task 'search-shard'") < log.index("Executing task 'search'")

    # the same grid in one process, on the CSV that pull-data gave this run
    (run_dir,) = (state / "kfp").glob("slipway-training-*")
    pulled = json.loads((run_dir / "pull-data" / "executor_output.json").read_text())
    meta = pulled["artifacts"]["dataset"]["artifacts"][0]["metadata"]
    spec = spec_from_metadata(meta)
    params = load_params(REPO / "params.yaml").search
    from slipway.data import load_frame, split_dataset

    frame = load_frame(run_dir / "pull-data" / "dataset", spec)
    train, _ = split_dataset(frame, params.holdout_fraction, params.seed, spec.target)
    single = fit_grid_search(train, spec, params)
    assert DatasetRef.from_metadata(meta).version == "v2"
    best = {k.removeprefix("best."): v for k, v in parent.data.params.items() if "best." in k}
    assert best == {k: str(v) for k, v in single.best_params.items()}
    assert parent.data.metrics["cv_roc_auc_mean"] == pytest.approx(single.best_cv_score, abs=1e-12)
    assert parent.data.metrics["cv_roc_auc_std"] == pytest.approx(single.cv_std, abs=1e-12)

    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent.info.run_id}'",
        max_results=1000,
    )
    assert len(children) == single.candidates_tried == 8
    by_candidate = {int(c.data.params["candidate"]): c for c in children}
    assert sorted(by_candidate) == list(range(8))
    for c in single.candidates:
        child = by_candidate[c.candidate]
        assert child.data.metrics["cv_roc_auc_mean"] == pytest.approx(c.mean_score, abs=1e-12)
        assert child.data.metrics["rank"] == c.rank
    assert {c.data.params["shard"] for c in children} >= {"0", "1"}


def test_more_shards_than_fits_fails_in_the_plan_and_leaves_no_run(two_shards, state):
    from slipway.training.tracking import mlflow_client

    result = run_sharded(state, 1000)
    assert result["failed_task"] == "search-plan", result
    log = Path(result["log"]).read_text()
    assert "search_shards=1000 is more than the 40 fits" in log
    settings = load_settings(state_dir=state)
    client = mlflow_client(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name).experiment_id
    tops = [
        r
        for r in client.search_runs([experiment], max_results=1000)
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert [r.info.run_id for r in tops] == [two_shards["run_id"]]
    assert {r.info.status for r in client.search_runs([experiment], max_results=1000)} == {
        "FINISHED"
    }
