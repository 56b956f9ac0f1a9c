"""The sharded search as plan / shard / reduce steps, halving, and one MLflow child per candidate.

The steps run in this process against one SQLite MLflow store per module (the first store costs
~4.6 s); each test gets its own Kubeflow run id, so its parent run is its own.
"""

import uuid
from pathlib import Path

import pytest

from slipway.config import load_settings
from slipway.data import DatasetRef
from slipway.data.schema import breast_cancer_spec
from slipway.data.table import DATASET_VERSIONS, build_dataset
from slipway.errors import ConfigError
from slipway.params import HalvingParams, parse_params
from slipway.training import fanout
from slipway.training.fanout import ShardFailedError, plan_search, reduce_search, run_shard
from slipway.training.search import describe_params
from slipway.training.shards import CandidateScore
from slipway.training.tracking import PARENT_RUN_TAG, log_candidate_runs, mlflow_client
from slipway.training.train import Sharding, train_candidate

SPEC = breast_cancer_spec()
# 3 logistic-regression candidates + 1 forest = 4 candidates x 3 folds = 12 fits
CANDIDATES = [
    {"estimator": "logistic_regression", "grid": {"C": [0.01, 0.1, 1.0]}},
    {
        "estimator": "random_forest",
        "grid": {"scaler": ["none"], "n_estimators": [10], "max_depth": [3]},
    },
]
SEARCH = parse_params({"search": {"cv_folds": 3, "candidates": CANDIDATES}}).search
FITS = 12


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, DatasetRef]:
    path = tmp_path_factory.mktemp("data") / "v1.csv"
    build_dataset(DATASET_VERSIONS["v1"]).to_csv(path, index=False)
    ref = DatasetRef(
        name="breast-cancer",
        version="v1",
        path="data/breast-cancer/v1.csv",
        md5="a" * 32,
        rev="HEAD",
    )
    return path, ref


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings(state_dir=tmp_path_factory.mktemp("state"), git_commit="0" * 40)


@pytest.fixture(scope="module")
def one_task(table, settings):
    path, ref = table
    return train_candidate(path, ref, SPEC, SEARCH, settings, Sharding(1, "kfp-one-task"))


def children_of(settings, run_id):
    client = mlflow_client(settings.tracking_uri)
    experiment = client.get_run(run_id).info.experiment_id
    return client.search_runs(
        [experiment], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{run_id}'", max_results=1000
    )


def sharded(table, settings, shards, pipeline_run=None):
    path, ref = table
    sharding = Sharding(shards, pipeline_run or f"kfp-{uuid.uuid4().hex[:8]}")
    indices = plan_search(path, ref, SPEC, SEARCH, settings, sharding)
    assert indices == list(range(shards))
    for shard in indices:
        run_shard(path, SPEC, SEARCH, settings, sharding, shard)
    return sharding, train_candidate(path, ref, SPEC, SEARCH, settings, sharding)


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        (0, "search_shards=0 is below 1"),
        (-2, "search_shards=-2 is below 1"),
        (FITS + 1, f"search_shards={FITS + 1} is more than the {FITS} fits"),
    ],
)
def test_a_shard_count_out_of_range_fails_before_any_mlflow_run(table, tmp_path, shards, message):
    path, ref = table
    fresh = load_settings(state_dir=tmp_path / "state", git_commit="0" * 40)
    for call in (
        lambda: plan_search(path, ref, SPEC, SEARCH, fresh, Sharding(shards, "kfp-x")),
        lambda: train_candidate(path, ref, SPEC, SEARCH, fresh, Sharding(shards, "kfp-x")),
    ):
        with pytest.raises(ConfigError, match=message):
            call()
    assert not (fresh.state_dir / "mlflow.db").exists()


def test_sharding_a_halving_search_or_without_a_kubeflow_run_is_refused(table, tmp_path):
    path, ref = table
    fresh = load_settings(state_dir=tmp_path / "state", git_commit="0" * 40)
    halving = SEARCH.model_copy(update={"strategy": "halving"})
    with pytest.raises(ConfigError, match=r"search_shards=2 with search.strategy 'halving'"):
        plan_search(path, ref, SPEC, halving, fresh, Sharding(2, "kfp-x"))
    with pytest.raises(ConfigError, match=r"search_shards=2 needs the Kubeflow run's id"):
        plan_search(path, ref, SPEC, SEARCH, fresh, Sharding(2, None))
    assert not (fresh.state_dir / "mlflow.db").exists()


def test_one_task_search_logs_every_candidate_as_a_child_run(one_task, settings):
    client = mlflow_client(settings.tracking_uri)
    parent = client.get_run(one_task.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.strategy"] == "grid"
    assert parent.data.params["search.fits"] == str(FITS)
    assert parent.data.params["search.shards"] == "1"
    assert parent.data.tags["slipway.pipeline_run"] == "kfp-one-task"
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["breast-cancer-v1"]
    children = children_of(settings, one_task.run_id)
    assert len(children) == 4
    assert sorted(c.info.run_id for c in children) == sorted(one_task.candidate_runs)
    by_candidate = {int(c.data.params["candidate"]): c for c in children}
    assert by_candidate[3].data.params["estimator"] == "RandomForestClassifier"
    assert by_candidate[0].data.params["C"] == "0.01"
    assert {c.data.params["shard"] for c in children} == {"0"}
    assert {c.info.status for c in children} == {"FINISHED"}
    assert all(c.inputs.dataset_inputs == [] for c in children)  # the parent keeps the dataset
    best = min(children, key=lambda c: (c.data.metrics["rank"], int(c.data.params["candidate"])))
    assert best.data.metrics["cv_roc_auc_mean"] == pytest.approx(one_task.search.best_cv_score)
    assert parent.data.metrics["cv_roc_auc_mean"] == one_task.search.best_cv_score
    assert all(c.data.metrics["mean_fit_time_seconds"] > 0 for c in children)


@pytest.mark.parametrize("shards", [2, 5])
def test_sharded_search_equals_the_one_task_search(table, settings, one_task, shards):
    _, trained = sharded(table, settings, shards)
    assert trained.search.best_params == one_task.search.best_params
    assert trained.search.best_cv_score == pytest.approx(one_task.search.best_cv_score, abs=1e-12)
    assert trained.search.cv_std == pytest.approx(one_task.search.cv_std, abs=1e-12)
    for merged, single in zip(trained.search.candidates, one_task.search.candidates, strict=True):
        assert merged.mean_score == pytest.approx(single.mean_score, abs=1e-12)
        assert merged.rank == single.rank
    client = mlflow_client(settings.tracking_uri)
    parent = client.get_run(trained.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.shards"] == str(shards)
    assert parent.data.params["best.estimator"] == one_task.search.best_params["estimator"]
    assert sorted(a.path for a in client.list_artifacts(trained.run_id, "shards")) == [
        f"shards/shard-{i}.json" for i in range(shards)
    ]
    children = children_of(settings, trained.run_id)
    assert len(children) == 4
    assert {s for c in children for s in c.data.params["shard"].split(",")} == {
        str(i) for i in range(shards)
    }
    assert trained.model.predict_proba(build_dataset(DATASET_VERSIONS["v1"]).head(3)).shape == (
        3,
        2,
    )


def test_a_failed_shard_names_itself_and_its_candidates_and_fails_the_run(
    table, settings, monkeypatch
):
    path, ref = table
    sharding = Sharding(3, "kfp-failing-shard")
    plan_search(path, ref, SPEC, SEARCH, settings, sharding)

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(fanout, "fit_shard", broken)
    with pytest.raises(ShardFailedError, match=r"shard 1 of 3 failed fitting candidates \[1, 2\]"):
        run_shard(path, SPEC, SEARCH, settings, sharding, 1)
    client = mlflow_client(settings.tracking_uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name(settings.experiment_name).experiment_id],
        filter_string="tags.`slipway.pipeline_run` = 'kfp-failing-shard'",
    )
    assert parent.info.status == "FAILED"
    assert parent.data.tags["slipway.failed_shard"] == "1"


def test_the_reduce_requires_every_shard_and_fails_the_run_otherwise(table, settings):
    path, ref = table
    sharding = Sharding(3, "kfp-missing-shard")
    plan_search(path, ref, SPEC, SEARCH, settings, sharding)
    for shard in (0, 2):
        run_shard(path, SPEC, SEARCH, settings, sharding, shard)
    with pytest.raises(ConfigError, match=r"lacks the results of shard\(s\) \[1\] of 3"):
        reduce_search(path, SPEC, SEARCH, settings, sharding)
    client = mlflow_client(settings.tracking_uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name(settings.experiment_name).experiment_id],
        filter_string="tags.`slipway.pipeline_run` = 'kfp-missing-shard'",
    )
    assert parent.info.status == "FAILED"
    assert children_of(settings, parent.info.run_id) == []


def test_halving_spends_fewer_rows_and_records_strategy_and_fits(table, settings, one_task):
    path, ref = table
    halving = SEARCH.model_copy(
        update={"strategy": "halving", "halving": HalvingParams(factor=2, min_resources=60)}
    )
    trained = train_candidate(path, ref, SPEC, halving, settings)
    assert trained.search.strategy == "halving"
    # rounds of 4, 2, 1 candidates x 3 folds: more fits than the grid's 12, on 60/120/240 rows
    assert trained.search.fits == (4 + 2 + 1) * 3
    params = mlflow_client(settings.tracking_uri).get_run(trained.run_id).data.params
    assert params["search.strategy"] == "halving"
    assert params["search.fits"] == str(trained.search.fits)
    assert params["search.halving.factor"] == "2.0"
    assert params["search.halving.min_resources"] == "60"
    children = children_of(settings, trained.run_id)
    assert len(children) == 4  # one per candidate, however many rounds it survived
    rounds = {int(c.data.params["halving.round"]) for c in children}
    assert rounds == {0, 1, 2}  # 4 -> 2 -> 1 candidates
    rows = sorted(int(c.data.params["halving.rows"]) for c in children)
    assert rows == [60, 60, 120, 240]
    assert sum(rows) * 3 < FITS * 455  # row-fits: what halving saves


def test_halving_params_take_kubeflow_doubles_and_refuse_nonsense():
    assert HalvingParams.model_validate({"min_resources": 60.0}).min_resources == 60
    assert HalvingParams().model_dump() == {"factor": 3.0, "min_resources": "exhaust"}
    with pytest.raises(ConfigError, match=r"search.strategy='random'"):
        parse_params({"search": {"strategy": "random", "candidates": CANDIDATES}})
    with pytest.raises(ConfigError, match=r"search.halving.factor=1"):
        parse_params({"search": {"halving": {"factor": 1}, "candidates": CANDIDATES}})
    with pytest.raises(ConfigError, match="min_resources 1 is below 2 rows"):
        parse_params({"search": {"halving": {"min_resources": 1}, "candidates": CANDIDATES}})


class CountingClient:
    """Records each call; answers create_run with a run id."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "create_run":
                from types import SimpleNamespace

                return SimpleNamespace(info=SimpleNamespace(run_id=f"child-{len(self.calls)}"))
            return None

        return call


def test_child_runs_are_logged_in_one_batch_each():
    candidates = [
        CandidateScore(i, {"clf__C": c}, 0.9 + i / 100, 0.01, 3 - i, 0.2, (i % 2,))
        for i, c in enumerate([0.1, 1.0, 10.0])
    ]
    client = CountingClient()
    ids = log_candidate_runs(client, "7", "parent", candidates, "roc_auc", describe_params)
    names = [name for name, _, _ in client.calls]
    assert names == ["create_run", "log_batch", "set_terminated"] * 3
    assert ids == ["child-1", "child-4", "child-7"]
    create = client.calls[0]
    assert create[2]["tags"][PARENT_RUN_TAG] == "parent"
    batch = client.calls[4][2]
    assert {m.key: m.value for m in batch["metrics"]} == {
        "cv_roc_auc_mean": 0.91,
        "cv_roc_auc_std": 0.01,
        "mean_fit_time_seconds": 0.2,
        "rank": 2.0,
    }
    assert {p.key: p.value for p in batch["params"]} == {"candidate": "1", "shard": "1", "C": "1.0"}


def test_shard_failed_error_lives_with_the_other_errors_and_stays_importable_from_training():
    import slipway.errors
    import slipway.training
    import slipway.training.fanout

    assert slipway.training.ShardFailedError is slipway.errors.ShardFailedError
    assert slipway.training.fanout.ShardFailedError is slipway.errors.ShardFailedError
    assert issubclass(slipway.errors.ShardFailedError, slipway.errors.SlipwayError)
    assert issubclass(slipway.errors.ShardFailedError, RuntimeError)
