"""The one-task search fits before MLflow, its store or skops is imported (their memory is not
held during the fit: peak RSS at 1,000,000 rows, docs/benchmarks.md), and still logs the whole
table as the run's dataset input, as it did when the input was built before the fit.

Runs in a fresh interpreter: this test process may have imported MLflow already.
"""

import json
import subprocess
import sys
from pathlib import Path

from slipway.config import load_settings
from slipway.data import DatasetRef, load_frame
from slipway.data.schema import breast_cancer_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset
from slipway.training.pipeline_run import training_input
from slipway.training.tracking import mlflow_client

PROJECT = Path(__file__).resolve().parents[3]

CHILD = r"""
import json, sys
from pathlib import Path

from slipway.config import load_settings
from slipway.data import DatasetRef
from slipway.data.schema import breast_cancer_spec
from slipway.params import parse_params
from slipway.training import train as train_module

csv, state = Path(sys.argv[1]), Path(sys.argv[2])
seen = {}

def spy(name, fn):
    def call(*args, **kwargs):
        seen[name] = sorted(m for m in ("mlflow", "skops", "sqlalchemy") if m in sys.modules)
        return fn(*args, **kwargs)
    return call

train_module.fit_search = spy("fit", train_module.fit_search)
train_module.score_features = spy("score", train_module.score_features)
ref = DatasetRef("breast-cancer", "v1", "data/breast-cancer/v1.csv", "a" * 32, "HEAD")
search = parse_params({"search": {"cv_folds": 3, "candidates": [
    {"estimator": "logistic_regression", "grid": {"C": [0.1, 1.0]}}]}}).search
settings = load_settings(state_dir=state, git_commit="0" * 40)
trained = train_module.train_candidate(csv, ref, breast_cancer_spec(), search, settings)
print("RESULT " + json.dumps({"seen": seen, "run_id": trained.run_id}))
"""


def test_the_fit_and_the_training_metrics_run_before_mlflow_is_imported(tmp_path):
    csv = tmp_path / "v1.csv"
    build_dataset(DATASET_VERSIONS["v1"]).to_csv(csv, index=False)
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(csv), str(state)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["seen"] == {"fit": [], "score": []}

    # the dataset input is the whole table's, read again after the fit
    settings = load_settings(state_dir=state, git_commit="0" * 40)
    run = mlflow_client(settings.tracking_uri).get_run(result["run_id"])
    [logged] = run.inputs.dataset_inputs
    spec = breast_cancer_spec()
    ref = DatasetRef("breast-cancer", "v1", "data/breast-cancer/v1.csv", "a" * 32, "HEAD")
    expected = training_input(load_frame(csv, spec), ref, spec, settings)
    assert logged.dataset.name == expected.name
    assert logged.dataset.digest == expected.digest
    assert json.loads(logged.dataset.schema) == json.loads(expected.schema)
    assert json.loads(logged.dataset.profile) == json.loads(expected.profile)
    assert json.loads(logged.dataset.profile)["num_rows"] == len(load_frame(csv, spec))
