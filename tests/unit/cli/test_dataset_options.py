"""``slipway run/submit --dataset`` and ``slipway data list``'s champion column.

Bad input (an unknown dataset or version, an invalid spec) fails in one sentence before any side
effect: exit 1, no state folder, so no MLflow run and no DVC seeding.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer
import yaml

# imported before any CliRunner call: DVC binds its log handler to the stdout of the moment it is
# first imported, and CliRunner's stdout is closed once its call returns
from dvc.repo import Repo
from typer.testing import CliRunner

from slipway import orchestration
from slipway.cli import app
from slipway.cli import submit as submit_cli
from tests.support import REPO
from tests.unit.orchestration.test_submit import COMMIT, FakeClient

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    for key in ("SLIPWAY_DVC_REPO", "SLIPWAY_DVC_REMOTE_URL", "SLIPWAY_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(state))
    monkeypatch.setenv("SLIPWAY_PROJECT_DIR", str(REPO))
    monkeypatch.setenv("COLUMNS", "200")
    return state


def _one_sentence_failure(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_run_with_an_unknown_dataset_names_it_and_the_known_ones(env):
    import builtins

    caller_import = builtins.__import__
    out = _one_sentence_failure(CliRunner().invoke(app, ["run", "--dataset", "nope"]))
    assert "unknown dataset 'nope'" in out
    assert "breast-cancer (v1, v2)" in out
    # the command paused the collector in its imports; the calling program gets its import back
    assert builtins.__import__ is caller_import
    assert not env.exists()  # nothing written: no MLflow store, no seeded remote


def test_run_with_an_unknown_version_names_it_and_the_known_ones(env):
    result = CliRunner().invoke(
        app, ["run", "--dataset", "breast-cancer", "--dataset-version", "v9"]
    )
    out = _one_sentence_failure(result)
    assert "unknown dataset version 'v9'; known versions: v1, v2" in out
    assert not env.exists()


def test_run_with_an_invalid_spec_fails_before_the_run(env, tmp_path, monkeypatch):
    project = tmp_path / "project"
    subprocess.run([*GIT, "init", "-q", str(project)], check=True)
    Repo.init(str(project)).close()
    folder = project / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "v1.csv").write_text("size,label\n1.0,0\n2.0,1\n")
    spec = {"name": "toy", "task": "binary", "target": "label", "classes": [0, 1]}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))  # no features, no positive_class
    with Repo(str(project)) as repo:
        repo.add([str(folder / "v1.csv")])
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-qm", "toy"], cwd=project, check=True)
    monkeypatch.setenv("SLIPWAY_DVC_REPO", str(project))
    out = _one_sentence_failure(CliRunner().invoke(app, ["run", "--dataset", "toy"]))
    assert "data/toy/dataset.yaml is not a valid dataset spec" in out
    assert "field features is missing" in out
    assert not env.exists()


def test_run_with_a_metric_of_another_task_fails_before_the_run(env, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"]["primary_metric"] = "rmse"  # a regression metric; breast-cancer is binary
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    out = _one_sentence_failure(CliRunner().invoke(app, ["run", "--params", str(path)]))
    assert "rmse" in out
    assert "binary" in out
    assert not env.exists()  # refused before the state folder, the MLflow store or a run


def test_run_with_zero_search_shards_is_refused_before_the_run(env):
    result = CliRunner().invoke(app, ["run", "--search-shards", "0"])
    assert result.exit_code == 2, result.output  # typer's usage error: the value and its range
    assert "search-shards" in " ".join(result.output.split())
    assert not env.exists()


def test_run_passes_search_shards_to_the_pipeline(env, monkeypatch):
    seen = {}

    def fake_run(settings, request, progress, capture=True, bytecode_from=None):
        seen.update(request.arguments())
        raise typer.Exit(0)

    monkeypatch.setattr(orchestration, "run_training", fake_run)
    result = CliRunner().invoke(app, ["run", "--search-shards", "3"])
    assert result.exit_code == 0, result.output
    assert seen["search_shards"] == 3
    assert seen["dataset"] == "breast-cancer"


@pytest.fixture
def submit_app(monkeypatch) -> typer.Typer:
    for key in ("SLIPWAY_IMAGE_REGISTRY", "SLIPWAY_IMAGE_TAG", "SLIPWAY_KFP_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLIPWAY_GIT_COMMIT", COMMIT)
    cli = typer.Typer()
    submit_cli.register(cli)
    cli.command("noop")(lambda: None)
    return cli


def test_submit_with_a_dataset_passes_its_version_spec_limits_and_params(
    env, submit_app, monkeypatch
):
    client = FakeClient(pipeline_id="p-1")
    monkeypatch.setattr(orchestration, "connect", lambda host, **kwargs: client)
    result = CliRunner().invoke(
        submit_app,
        ["submit", "--host", "https://kf/pipeline", "--dataset", "breast-cancer"],
    )
    assert result.exit_code == 0, result.output
    params = client.kwargs("run_pipeline")["params"]
    assert (params["dataset"], params["dataset_version"], params["dataset_rev"]) == (
        "breast-cancer",
        "v2",
        "HEAD",
    )
    assert params["data_params"] == {
        "target": "diagnosis",
        "min_rows": 100,
        "max_duplicate_rows": 0,
    }
    project = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["search_params"]["cv_folds"] == project["search"]["cv_folds"]


def test_submit_refuses_an_unknown_dataset_before_connecting(env, submit_app, monkeypatch):
    monkeypatch.setattr(orchestration, "connect", lambda *a, **k: pytest.fail("connected"))
    result = CliRunner().invoke(submit_app, ["submit", "--host", "h", "--dataset", "nope"])
    assert "unknown dataset 'nope'" in _one_sentence_failure(result)


@pytest.fixture
def narrow(monkeypatch):
    """The console at 80 columns, as the full suite creates it (COLUMNS is read once, at import)."""
    from slipway.cli.common import console

    monkeypatch.setattr(console, "_width", 80)


def _rows(output: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│┃").split("│")]
        if len(cells) == 8 and cells[2].startswith("v"):
            rows[(cells[0], cells[2])] = cells
    return rows


def test_data_list_without_an_mlflow_store_shows_no_champion_and_creates_none(env, narrow):
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert {("breast-cancer", "v1"), ("breast-cancer", "v2"), ("penguins", "v1")} <= set(rows)
    assert {cells[-1] for cells in rows.values()} == {"-"}
    assert rows[("diamonds", "v1")][5] == "53940"
    assert not (env / "mlflow.db").exists()


def test_data_list_skips_an_unreachable_mlflow_with_a_warning(env, monkeypatch):
    monkeypatch.setenv("SLIPWAY_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "champion column skipped: MLflow at http://127.0.0.1:9 did not answer" in " ".join(
        result.output.split()
    )
    assert {cells[-1] for cells in _rows(result.output).values()} == {"-"}


def test_data_list_marks_the_version_the_champion_was_trained_on(env, narrow):
    from slipway.config import load_settings
    from slipway.registry import get_client

    settings = load_settings()
    env.mkdir(parents=True)
    client = get_client(settings.tracking_uri)
    pointer = yaml.safe_load((REPO / "data/penguins/v1.csv.dvc").read_text())
    client.create_registered_model("slipway-penguins")
    version = client.create_model_version("slipway-penguins", source=str(env / "model"))
    client.set_model_version_tag("slipway-penguins", version.version, "dataset_version", "v1")
    md5 = pointer["outs"][0]["md5"]
    client.set_model_version_tag("slipway-penguins", version.version, "dataset_md5", md5)
    client.set_registered_model_alias("slipway-penguins", "champion", version.version)
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows[("penguins", "v1")][-1] == "yes"
    assert rows[("breast-cancer", "v2")][-1] == "-"  # model "slipway" has no champion here
