"""The datasets of a DVC project at a revision: resolving a name and version, pulling one version
with its spec, the params override, and the registered model name of each dataset."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slipway.config import load_settings, model_name_for, settings_for
from slipway.data.catalog import (
    available_datasets,
    latest_version,
    merge_params,
    open_project,
    resolve_dataset,
)
from slipway.data.pull import pull_dataset
from slipway.data.versioning import push_datasets
from slipway.errors import DatasetSpecError, DatasetVersionError

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]

SPEC = {
    "name": "toy",
    "task": "binary",
    "target": "label",
    "classes": [0, 1],
    "positive_class": 1,
    "features": [{"name": "size", "kind": "numeric"}, {"name": "colour", "kind": "categorical",
                                                       "categories": ["red", "blue"]}],
    "min_rows": 10,
}  # fmt: skip


def _table(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": [float(i % 7) for i in range(rows)],
            "colour": ["red" if i % 3 else "blue" for i in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """A git + DVC project with dataset toy (v1 CSV, v2 Parquet, v10 CSV), a params override,
    and a folder ``empty`` holding only a spec; everything committed and pushed."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("catalog") / "project"
    remote = root.parent / "remote"
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    Repo.init(str(root)).close()
    toy = root / "data" / "toy"
    toy.mkdir(parents=True)
    _table(20).to_csv(toy / "v1.csv", index=False)
    _table(30).to_parquet(toy / "v2.parquet")
    _table(40).to_csv(toy / "v10.csv", index=False)
    (toy / "dataset.yaml").write_text(yaml.safe_dump(SPEC))
    (toy / "params.yaml").write_text("search:\n  cv_folds: 3\n")
    (root / "data" / "empty").mkdir()
    (root / "data" / "empty" / "dataset.yaml").write_text(yaml.safe_dump({**SPEC, "name": "empty"}))
    with Repo(str(root)) as repo:
        repo.add([str(toy / name) for name in ("v1.csv", "v2.parquet", "v10.csv")])
    push_datasets(root, str(remote))
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "toy"], cwd=root, check=True)
    return root, remote


def test_versions_are_listed_in_number_order_and_the_latest_is_the_default(project):
    root, remote = project
    with open_project(str(root), "HEAD", str(remote)) as fs:
        assert available_datasets(fs) == {"empty": [], "toy": ["v1", "v2", "v10"]}
        found = resolve_dataset(fs, "toy", None, "here")
    assert (found.version, found.path) == ("v10", "data/toy/v10.csv")
    assert found.spec.name == "toy"
    assert found.params_override == {"search": {"cv_folds": 3}}
    assert latest_version(["v9", "v10", "v2"]) == "v10"


def test_unknown_dataset_and_version_name_the_value_and_the_known_ones(project):
    root, remote = project
    with open_project(str(root), "HEAD", str(remote)) as fs:
        with pytest.raises(DatasetVersionError, match="unknown dataset 'nope'") as unknown:
            resolve_dataset(fs, "nope", None, "the project")
        with pytest.raises(DatasetVersionError, match="unknown dataset version 'v3'") as version:
            resolve_dataset(fs, "toy", "v3", "the project")
        with pytest.raises(DatasetVersionError, match="unknown dataset 'empty'"):
            resolve_dataset(fs, "empty", None, "the project")  # a spec but no version
    assert "toy (v1, v2, v10)" in str(unknown.value)
    assert "slipway data add" in str(unknown.value)
    assert "known versions: v1, v2, v10" in str(version.value)


def test_pull_writes_the_version_and_returns_its_ref_and_spec(project, tmp_path):
    root, remote = project
    dest = tmp_path / "out" / "dataset"
    pulled = pull_dataset(str(root), "toy", "v2", dest, str(remote), rev="HEAD")
    assert pulled.ref.name == "toy"
    assert (pulled.ref.version, pulled.ref.path) == ("v2", "data/toy/v2.parquet")
    assert len(pulled.ref.rev) == 40  # the commit, not "HEAD"
    assert pulled.spec.target == "label"
    assert len(pd.read_parquet(dest)) == 30
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dataset"]


def test_a_failed_pull_writes_nothing(project, tmp_path):
    root, remote = project
    dest = tmp_path / "out" / "dataset"
    with pytest.raises(DatasetVersionError, match="unknown dataset version 'v7'"):
        pull_dataset(str(root), "toy", "v7", dest, str(remote), rev="HEAD")
    assert not dest.parent.exists()


def test_a_spec_naming_another_dataset_is_refused(tmp_path, project):
    from dvc.repo import Repo

    root, _ = project
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(root), str(other)], check=True)
    (other / "data" / "toy" / "dataset.yaml").write_text(yaml.safe_dump({**SPEC, "name": "x"}))
    Repo(str(other)).close()
    with (
        open_project(str(other), None, str(tmp_path / "r")) as fs,
        pytest.raises(DatasetSpecError, match="names dataset 'x', not 'toy'"),
    ):
        resolve_dataset(fs, "toy", "v1", "the workspace")


def test_params_override_deep_merges_and_lists_replace():
    base = {"search": {"seed": 1, "cv_folds": 5, "candidates": [{"a": 1}, {"b": 2}]}, "x": 1}
    override = {"search": {"cv_folds": 3, "candidates": [{"c": 3}]}, "evaluate": {"m": 0.1}}
    assert merge_params(base, override) == {
        "search": {"seed": 1, "cv_folds": 3, "candidates": [{"c": 3}]},
        "x": 1,
        "evaluate": {"m": 0.1},
    }
    assert base["search"]["cv_folds"] == 5  # not modified in place
    assert merge_params(base, None) == base


def test_a_datasets_thresholds_replace_the_projects_whole():
    # the project's are binary limits; a multiclass dataset's must not inherit roc_auc/recall
    base = {"evaluate": {"min_delta": 0.002, "thresholds": {"roc_auc": 0.95, "recall": 0.85}}}
    override = {"evaluate": {"thresholds": {"f1_macro": 0.9}}}
    assert merge_params(base, override) == {
        "evaluate": {"min_delta": 0.002, "thresholds": {"f1_macro": 0.9}}
    }


def test_every_shipped_datasets_params_fit_its_task():
    from slipway.data import load_dataset_spec
    from slipway.orchestration.request import dataset_params
    from slipway.params import check_params_for_task
    from tests.support import REPO

    for folder in sorted((REPO / "data").iterdir()):
        override = folder / "params.yaml"
        if not override.exists():
            continue
        spec = load_dataset_spec(folder / "dataset.yaml")
        params = dataset_params(
            REPO / "params.yaml", yaml.safe_load(override.read_text()), spec.name
        )
        check_params_for_task(params, spec.task)  # raises ConfigError naming the misfit
        assert params.evaluate.thresholds, f"{folder.name} commits its own thresholds"


def test_resolve_request_merges_the_dataset_params_and_takes_data_params_from_the_spec(
    project, tmp_path
):
    from slipway.orchestration import resolve_request
    from tests.support import REPO

    root, remote = project
    settings = load_settings(
        state_dir=tmp_path / "state",
        project_dir=REPO,
        dvc_repo=str(root),
        dvc_remote_url=str(remote),
    )
    request = resolve_request(settings, "toy")
    assert request.params.search.cv_folds == 3  # from data/toy/params.yaml
    assert request.params.search.seed == 42  # from the project's params.yaml
    arguments = request.arguments()
    assert (arguments["dataset"], arguments["dataset_version"]) == ("toy", "v10")
    assert arguments["data_params"] == {"target": "label", "min_rows": 10, "max_duplicate_rows": 0}
    whole = resolve_request(settings, "toy", "v1", params_file=REPO / "params.yaml")
    assert whole.params.search.cv_folds == 5  # --params is used as is
    assert not (tmp_path / "state").exists()


def test_model_name_per_dataset():
    assert model_name_for("breast-cancer", "slipway") == "slipway"
    assert model_name_for("penguins", "slipway") == "slipway-penguins"
    assert model_name_for("house_prices", "acme") == "acme-house-prices"
    assert model_name_for("penguins", "slipway", "birds") == "birds"
    settings = load_settings()
    penguins = settings_for(settings, {"spec": {"name": "penguins"}})
    assert penguins.model_name == "slipway-penguins"
    assert penguins.tracking_uri == settings.tracking_uri
    assert settings_for(settings, {"spec": {"name": "breast-cancer"}}) is settings
    with pytest.raises(DatasetSpecError, match="rerun the whole pipeline"):
        settings_for(settings, {"version": "v1"})


def test_a_spec_model_name_must_be_a_registry_name():
    from slipway.data.spec import parse_dataset_spec

    assert parse_dataset_spec({**SPEC, "model_name": "toy-model"}).model_name == "toy-model"
    with pytest.raises(DatasetSpecError, match="model_name"):
        parse_dataset_spec({**SPEC, "model_name": "Toy Model"})
