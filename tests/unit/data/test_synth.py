"""``slipway data synth``: a deterministic table with a known signal, matching its spec, tracked
and pushed like ``slipway data add``; a request without rows writes nothing."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from slipway.data import load_frame, validate_with_spec
from slipway.data.spec import load_dataset_spec
from slipway.data.synth import (
    CHUNK_ROWS,
    oracle_scores,
    synth_dataset,
    synth_spec,
    write_synthetic_table,
)
from slipway.data.versioning import md5_file
from slipway.errors import DatasetSpecError, DatasetVersionError


@pytest.fixture
def project(tmp_path):
    from dvc.repo import Repo

    root = tmp_path / "project"
    root.mkdir()
    Repo.init(str(root), no_scm=True).close()
    return root


def _tree(*roots: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for root in roots
        if root.exists()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "tmp" not in p.relative_to(root).parts[:2]
    }


def test_same_arguments_give_the_same_bytes_and_another_seed_does_not(tmp_path):
    rows = CHUNK_ROWS + 123  # two row groups: the chunk boundary is part of the contract
    a = write_synthetic_table(tmp_path / "a.parquet", rows, features=12, seed=7)
    b = write_synthetic_table(tmp_path / "b.parquet", rows, features=12, seed=7)
    c = write_synthetic_table(tmp_path / "c.parquet", rows, features=12, seed=8)
    assert md5_file(a) == md5_file(b)
    assert md5_file(a) != md5_file(c)
    meta = pq.ParquetFile(a).metadata
    assert (meta.num_rows, meta.num_row_groups, meta.num_columns) == (rows, 2, 13)


def test_the_table_matches_its_spec_and_passes_validation(tmp_path):
    path = write_synthetic_table(tmp_path / "t.parquet", 5_000, features=30, seed=1)
    spec = synth_spec("synth", 5_000, 30)
    frame = load_frame(path, spec)
    assert list(frame.columns) == [*spec.feature_names, spec.target]
    kinds = {f.name: f.kind for f in spec.features}
    assert sum(k == "categorical" for k in kinds.values()) == 3
    assert all(frame[c].dtype == np.float64 for c, k in kinds.items() if k == "numeric")
    assert set(frame["c0"]) == {"a", "b", "c", "d"}
    assert set(frame["label"]) == {0, 1}
    report = validate_with_spec(frame, spec)
    assert report.passed, report.violations
    assert report.rows == 5_000


def test_the_signal_is_the_known_one_and_a_linear_model_recovers_it(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    path = write_synthetic_table(tmp_path / "t.parquet", 40_000, features=12, seed=3)
    frame = load_frame(path, synth_spec("synth", 40_000, 12))
    train, test = frame.iloc[:30_000], frame.iloc[30_000:]
    oracle = roc_auc_score(test["label"], oracle_scores(test))
    assert 0.83 < oracle < 0.87  # the documented ~0.85 (docs/datasets.md)
    features = [c for c in frame.columns if c != "label"]
    model = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["c0"])], remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(train[features], train["label"])
    learned = roc_auc_score(test["label"], model.predict_proba(test[features])[:, 1])
    assert oracle - 0.01 < learned <= oracle + 0.005
    noise = roc_auc_score(test["label"], test["x05"])
    assert abs(noise - 0.5) < 0.02  # x05 and after carry no signal


def test_synth_dataset_writes_tracks_pushes_and_specs_it(project, tmp_path):
    remote = tmp_path / "remote"
    added = synth_dataset("big", 2_000, project, str(remote), features=10, seed=5)
    assert (added.ref.version, added.ref.path, added.rows, added.columns) == (
        "v1",
        "data/big/v1.parquet",
        2_000,
        11,
    )
    md5 = added.ref.md5
    assert md5 == md5_file(project / "data/big/v1.parquet")
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).exists()
    assert load_dataset_spec(project / "data/big/dataset.yaml") == synth_spec("big", 2_000, 10)
    again = synth_dataset("big", 2_000, project, str(remote), features=10, seed=5)
    assert (again.ref.version, again.ref.md5) == ("v2", md5)  # same arguments, same content
    with pytest.raises(DatasetSpecError, match=r"describes another table .* --features 10"):
        synth_dataset("big", 2_000, project, str(remote), features=20)
    with pytest.raises(DatasetVersionError, match="already has version v1"):
        synth_dataset("big", 2_000, project, str(remote), features=10, version="v1")


@pytest.mark.parametrize("rows", [0, -5])
def test_a_table_without_rows_is_refused_and_nothing_is_written(project, tmp_path, rows):
    remote = tmp_path / "remote"
    before = _tree(project, remote)
    with pytest.raises(DatasetSpecError, match=rf"--rows {rows} asks for a table without rows"):
        synth_dataset("big", rows, project, str(remote))
    assert _tree(project, remote) == before
    assert not (project / "data").exists()


@pytest.mark.parametrize(("features", "categorical"), [(3, None), (6, 2), (8, -1)])
def test_too_few_features_is_refused_before_writing(tmp_path, features, categorical):
    with pytest.raises(
        DatasetSpecError, match=rf"--features {features} with --categorical .* at least 5 numeric"
    ):
        write_synthetic_table(
            tmp_path / "t.parquet", 100, features=features, categorical=categorical
        )
    assert not (tmp_path / "t.parquet").exists()


def test_an_all_numeric_table_keeps_the_numeric_signal(tmp_path):
    from sklearn.metrics import roc_auc_score

    path = write_synthetic_table(tmp_path / "t.parquet", 20_000, features=10, categorical=0)
    spec = synth_spec("synth", 20_000, 10, categorical=0)
    frame = load_frame(path, spec)
    assert [f.kind for f in spec.features] == ["numeric"] * 10
    assert validate_with_spec(frame, spec).passed
    assert 0.82 < roc_auc_score(frame["label"], oracle_scores(frame)) < 0.86


def test_cli_synth_prints_the_version_and_refuses_zero_rows(project, tmp_path, monkeypatch):
    from slipway.cli import app

    remote = tmp_path / "remote"
    monkeypatch.setenv("SLIPWAY_PROJECT_DIR", str(project))
    monkeypatch.setenv("SLIPWAY_DVC_REPO", str(project))
    monkeypatch.setenv("SLIPWAY_DVC_REMOTE_URL", str(remote))
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    bad = runner.invoke(app, ["data", "synth", "--rows", "0", "--dataset", "big"])
    assert bad.exit_code == 1
    assert "--rows 0 asks for a table without rows" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert not (project / "data").exists()
    good = runner.invoke(
        app, ["data", "synth", "--rows", "500", "--dataset", "big", "--features", "8"]
    )
    assert good.exit_code == 0, good.output
    assert "data/big/v1.parquet" in good.output
    assert md5_file(project / "data/big/v1.parquet") in good.output
    assert pq.ParquetFile(project / "data/big/v1.parquet").metadata.num_rows == 500
