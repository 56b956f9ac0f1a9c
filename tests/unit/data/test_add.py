"""``slipway data add``: a good table is copied, tracked, pushed and described; every bad input
fails with one sentence and leaves the data/ tree, the DVC cache and the remote unchanged."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from slipway.data.intake import add_dataset, list_datasets
from slipway.data.spec import load_dataset_spec
from slipway.errors import (
    DatasetSpecError,
    DatasetValidationError,
    DatasetVersionError,
    RemoteUnavailableError,
)


@pytest.fixture
def project(tmp_path):
    from dvc.repo import Repo

    root = tmp_path / "project"
    root.mkdir()
    Repo.init(str(root), no_scm=True).close()
    return root


@pytest.fixture
def remote(tmp_path):
    return tmp_path / "remote"


@pytest.fixture
def csv(tmp_path):
    rows = "".join(f'{i},"{"ab"[i % 2]}, x",{i * 0.5},{i % 3 == 0:d}\r\n' for i in range(40))
    path = tmp_path / "in" / "table.csv"
    path.parent.mkdir()
    path.write_bytes(b"\xef\xbb\xbf" + ("n,name,size,label\r\n" + rows).encode())
    return path


def _tree(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_file() and "tmp" not in p.relative_to(root).parts[:2]:
                out[str(p)] = p.read_bytes()
    return out


def _add(source, project, remote, **kwargs):
    kwargs.setdefault("name", "toy")
    kwargs.setdefault("target", "label")
    return add_dataset(source, project_dir=project, remote_url=str(remote), **kwargs)


def test_add_copies_tracks_pushes_and_drafts_a_spec(csv, project, remote):
    added = _add(csv, project, remote)
    assert (added.ref.version, added.ref.path, added.rows, added.columns) == (
        "v1",
        "data/toy/v1.csv",
        40,
        4,
    )
    assert (project / "data/toy/v1.csv").read_bytes() == csv.read_bytes()
    md5 = added.ref.md5
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).exists()
    spec = load_dataset_spec(project / "data/toy/dataset.yaml")
    assert (spec.task, spec.target, spec.feature_names) == (
        "binary",
        "label",
        ["n", "name", "size"],
    )
    assert added.spec_drafted
    again = _add(csv.rename(csv.with_name("second.csv")), project, remote)
    assert again.ref.version == "v2"
    assert not again.spec_drafted
    [info] = list_datasets(project)
    assert (info.name, info.task) == ("toy", "binary")
    assert [(v.version, v.md5, v.rows) for v in info.versions] == [("v1", md5, 40), ("v2", md5, 40)]


def test_parquet_is_recognised_by_content(csv, project, remote, tmp_path):
    frame = pd.read_csv(csv, encoding="utf-8-sig")
    path = tmp_path / "in" / "table.data"
    frame.to_parquet(path)
    added = _add(path, project, remote, version="2024-06")
    assert added.ref.path == "data/toy/2024-06.parquet"
    assert added.rows == 40


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "empty.csv").write_bytes(b"")
    (d / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (d / "header.csv").write_text("n,name,label\n")
    (d / "blank.csv").write_text("\n\n")
    (d / "latin1.csv").write_bytes("n,label\n1,caf\xe9\n".encode("latin-1") * 3)
    (d / "fake.parquet").write_bytes(b"PAR1 not really")
    table = pa.table({"n": [1, 2], "tags": [["a"], ["b", "c"]], "label": [0, 1]})
    pq.write_table(table, d / "nested.parquet")
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", DatasetValidationError, r"does not exist or is not a file"),
        ("empty", DatasetValidationError, r"is empty; pass a CSV or Parquet file"),
        ("image", DatasetValidationError, r"is neither CSV nor Parquet"),
        ("header", DatasetValidationError, r"has a header but no data rows"),
        ("blank", DatasetValidationError, r"has no header or rows"),
        ("latin1", DatasetValidationError, r"is not UTF-8 text"),
        ("fake", DatasetValidationError, r"is not a readable Parquet file"),
        ("nested", DatasetValidationError, r"nested Parquet column\(s\) tags .* flatten"),
    ],
)
def test_bad_files_leave_nothing_behind(tmp_path, project, remote, case, error, message):
    files = _bad_files(tmp_path)
    source = files.get(case, tmp_path / "nope.csv")
    before = _tree(project, remote)
    with pytest.raises(error, match=message) as info:
        _add(source, project, remote)
    assert str(source) in str(info.value)
    assert _tree(project, remote) == before


def test_target_missing_names_the_columns(csv, project, remote):
    before = _tree(project, remote)
    with pytest.raises(DatasetValidationError, match=r"target column 'price' is not in .*n, name"):
        _add(csv, project, remote, target="price")
    assert _tree(project, remote) == before


def test_name_and_version_are_checked_first(csv, project, remote):
    _add(csv, project, remote)
    before = _tree(project, remote)
    with pytest.raises(DatasetSpecError, match=r"dataset name 'My Data' is not a folder name"):
        _add(csv, project, remote, name="My Data")
    with pytest.raises(DatasetVersionError, match=r"already has version v1 .* never overwritten"):
        _add(csv, project, remote, version="v1")
    with pytest.raises(DatasetVersionError, match=r"version '\.\./x' is not a file name"):
        _add(csv, project, remote, version="../x")
    assert _tree(project, remote) == before


def test_data_that_breaks_the_committed_spec_is_refused(csv, project, remote, tmp_path):
    _add(csv, project, remote)
    before = _tree(project, remote)
    frame = pd.read_csv(csv, encoding="utf-8-sig").assign(size=-1.0, extra="x")
    bad = tmp_path / "in" / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DatasetValidationError, match=r"does not match .*dataset\.yaml") as info:
        _add(bad, project, remote)
    assert "column_in_schema" in info.value.report
    assert "constant_column" in info.value.report
    with pytest.raises(DatasetSpecError, match=r"says target 'label' and task 'binary'"):
        _add(csv, project, remote, target="n")
    with pytest.raises(DatasetSpecError, match=r"says target 'label' and task 'binary'"):
        _add(csv, project, remote, task="regression")
    assert _tree(project, remote) == before


def test_a_failed_push_takes_everything_back(csv, project, tmp_path):
    remote = tmp_path / "remote-is-a-file"
    remote.write_text("not a folder")
    before = _tree(project)
    with pytest.raises(RemoteUnavailableError, match=r"remote-is-a-file"):
        _add(csv, project, remote)
    assert _tree(project) == before  # no copy, no pointer, no cache object, no spec
    assert not (project / "data").exists() or not any((project / "data").iterdir())


def test_cli_add_prints_the_version_and_fails_in_one_sentence(csv, project, remote, monkeypatch):
    from slipway.cli import app

    monkeypatch.setenv("SLIPWAY_PROJECT_DIR", str(project))
    monkeypatch.setenv("SLIPWAY_DVC_REMOTE_URL", str(remote))
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(project.parent / "state"))
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal: the md5 and paths must stay whole
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "add", str(csv), "--dataset", "toy", "--target", "label"])
    assert ok.exit_code == 0, ok.output
    md5 = load_md5(project / "data/toy/v1.csv.dvc")
    assert all(s in ok.output for s in ("toy", "v1", md5, "40", "draft spec"))
    listed = runner.invoke(app, ["data", "list"])
    assert listed.exit_code == 0, listed.output
    assert "binary" in listed.output
    assert f"{md5[:8]} " in listed.output  # the short form, as the run summary shows it
    bad = runner.invoke(app, ["data", "add", str(csv), "--dataset", "toy", "--target", "nope"])
    assert bad.exit_code == 1
    assert "target column 'nope' is not in" in bad.output
    assert "Traceback" not in bad.output
    spec = runner.invoke(
        app, ["data", "infer-spec", str(csv), "--dataset", "toy", "--target", "label"]
    )
    assert spec.exit_code == 1
    assert "already exists and is never overwritten silently" in spec.output
    forced = runner.invoke(
        app, ["data", "infer-spec", str(csv), "--dataset", "toy", "--target", "label", "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert "wrote draft spec" in forced.output


def load_md5(pointer: Path) -> str:
    import yaml

    return yaml.safe_load(pointer.read_text())["outs"][0]["md5"]


def test_add_works_on_a_fresh_clone_whose_other_datasets_are_not_in_the_cache(csv, project, remote):
    """A clone tracks the shipped versions but has no cache: only the new file is pushed."""
    import shutil

    first = csv.with_name("first.csv")
    first.write_bytes(csv.read_bytes().replace(b",1\r\n", b",0\r\n", 1))  # other content
    other = _add(first, project, remote, name="other")  # tracked, pushed ...
    shutil.rmtree(project / ".dvc" / "cache")  # ... then gone from this clone's cache
    shutil.rmtree(remote)  # and from the remote: `slipway data push` would refuse now
    (project / other.ref.path).unlink()

    added = _add(csv, project, remote, name="mine")

    md5 = added.ref.md5
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).exists()
    assert (project / "data/mine/v1.csv").read_bytes() == csv.read_bytes()
