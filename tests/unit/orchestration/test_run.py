"""``run_training`` without kfp: the outcome of a run, the failed task, and the scoped environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from slipway.config import load_settings, scoped_environ
from slipway.errors import DatasetVersionError, PipelineRunError, RemoteUnavailableError
from slipway.orchestration import local_run
from slipway.orchestration import run as run_module
from slipway.orchestration.local_run import failed_task_of
from slipway.orchestration.request import TrainingRequest, resolve_request
from slipway.orchestration.run import latest_report, run_training
from slipway.params import load_params
from tests.support import REPO

COLOURED = (
    "Pipeline \x1b[95m'slipway-training'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
    "Inner task failed: \x1b[96m'validate-data'\x1b[0m."
)


@pytest.mark.parametrize(
    ("message", "task"),
    [
        (COLOURED, "validate-data"),
        ("... Inner task failed: 'promote' inside 'condition-1'.", "promote"),
        ("Task 'search' finished with status FAILURE", "search"),
        ("something else went wrong", None),
    ],
)
def test_failed_task_is_read_once_from_the_kfp_error(message: str, task: str | None) -> None:
    assert failed_task_of(RuntimeError(message)) == task


def test_scoped_environ_restores_changed_and_removes_added(monkeypatch) -> None:
    monkeypatch.setenv("SLIPWAY_H2_KEPT", "before")
    monkeypatch.delenv("SLIPWAY_H2_NEW", raising=False)
    with scoped_environ({"SLIPWAY_H2_KEPT": "during", "SLIPWAY_H2_NEW": "x"}):
        assert os.environ["SLIPWAY_H2_KEPT"] == "during"
        assert os.environ["SLIPWAY_H2_NEW"] == "x"
    assert os.environ["SLIPWAY_H2_KEPT"] == "before"
    assert "SLIPWAY_H2_NEW" not in os.environ


def test_scoped_environ_restores_after_an_error(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    with pytest.raises(RuntimeError, match="boom"), scoped_environ({"PATH": "/elsewhere"}):
        raise RuntimeError("boom")
    assert os.environ["PATH"] == "/usr/bin"


def test_unknown_dataset_version_fails_when_the_request_is_resolved(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state", project_dir=REPO)
    with pytest.raises(DatasetVersionError, match="unknown dataset version 'v9'") as failure:
        resolve_request(settings, dataset_version="v9")
    assert "v1, v2" in str(failure.value)
    arguments = resolve_request(settings).arguments()
    assert (arguments["dataset"], arguments["dataset_version"]) == ("breast-cancer", "v2")
    assert arguments["data_params"] == {
        "target": "diagnosis",
        "min_rows": 100,
        "max_duplicate_rows": 0,
    }
    assert not (tmp_path / "state").exists()  # resolving writes nothing


def test_a_failed_pipeline_leaves_the_environment_as_it_was(tmp_path: Path, monkeypatch) -> None:
    """run_compiled_pipeline restores PATH and SLIPWAY_* even when a task fails."""
    settings = load_settings(state_dir=tmp_path)
    before = dict(os.environ)

    class FakePipeline:
        name = "slipway-training"

        def __call__(self, **_: object) -> None:
            assert os.environ["SLIPWAY_STATE_DIR"] == str(settings.state_dir)
            raise RuntimeError(COLOURED)

    monkeypatch.setattr(
        "kfp.components.load_component_from_file", lambda path: FakePipeline(), raising=True
    )
    monkeypatch.setattr("kfp.local.init", lambda **_: None)
    with pytest.raises(PipelineRunError, match="pipeline slipway-training failed") as failure:
        local_run.run_compiled_pipeline(tmp_path / "p.yaml", settings, {})
    assert failure.value.failed_task == "validate-data"
    assert dict(os.environ) == before


def _fake_run(monkeypatch, tmp_path: Path, champions: list[str | None], error: Exception | None):
    settings = load_settings(state_dir=tmp_path, dvc_repo=str(tmp_path / "elsewhere"))
    calls = iter(champions)
    monkeypatch.setattr(run_module, "champion_version", lambda _: next(calls))

    def fake_pipeline(yaml_path, settings_, arguments, events):
        assert arguments["dataset_version"] == "v1"
        print("executor output of the fake pipeline")
        os.write(2, b"a task's stderr\n")
        report = tmp_path / "kfp" / "slipway-training-1" / "validate-data" / "report"
        report.parent.mkdir(parents=True)
        report.write_text("# report")
        if error is not None:
            raise error
        return "run-1"

    monkeypatch.setattr(local_run, "run_compiled_pipeline", fake_pipeline)
    request = TrainingRequest(params=load_params(REPO / "params.yaml"), dataset_version="v1")
    return run_training(settings, request)


def test_validation_failure_finds_this_runs_report(tmp_path: Path, monkeypatch) -> None:
    error = PipelineRunError("pipeline failed", failed_task="validate-data")
    result = _fake_run(monkeypatch, tmp_path, ["3", "3"], error)
    assert result.succeeded is False
    assert result.failure is error
    assert result.report == tmp_path / "kfp" / "slipway-training-1" / "validate-data" / "report"
    assert result.champion_before == result.champion_after == "3"
    assert result.champion_moved is False
    assert result.run_id is None
    assert result.summary is None
    assert result.html_report is None
    assert "executor output of the fake pipeline" in result.log.read_text()


def test_other_failures_have_no_report_and_say_the_champion_moved(tmp_path, monkeypatch) -> None:
    error = PipelineRunError("pipeline failed", failed_task="promote")
    result = _fake_run(monkeypatch, tmp_path, [None, "1"], error)
    assert result.report is None
    assert result.champion_moved is True
    assert (result.champion_before, result.champion_after) == (None, "1")


def test_success_returns_the_run_and_its_summary(tmp_path: Path, monkeypatch) -> None:
    summary = {"tags": {"slipway.promoted": "true"}, "metrics": {}, "params": {}}
    monkeypatch.setattr("slipway.training.run_summary", lambda uri, run_id: summary)
    reports = []
    monkeypatch.setattr(
        "slipway.training.write_run_report",
        lambda uri, run_id, path: reports.append((uri, run_id, path)) or path,
    )
    result = _fake_run(monkeypatch, tmp_path, ["1", "2"], None)
    assert result.succeeded is True
    assert result.run_id == "run-1"
    assert result.summary == summary
    assert result.champion_moved is True
    assert result.warnings == ()
    settings = load_settings(state_dir=tmp_path)
    assert reports == [(settings.tracking_uri, "run-1", tmp_path / "reports" / "run-1.html")]
    assert result.html_report == tmp_path / "reports" / "run-1.html"
    assert result.log is not None
    assert result.log.parent.parent == tmp_path / "runs"
    logged = result.log.read_text()
    assert "executor output of the fake pipeline" in logged
    assert "a task's stderr" in logged


def test_latest_report_ignores_older_runs(tmp_path: Path) -> None:
    old = tmp_path / "kfp" / "old" / "validate-data" / "report"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert latest_report(tmp_path, since=time.time() - 10) is None
    assert latest_report(tmp_path, since=time.time() - 1000) == old


def test_a_store_that_does_not_exist_has_no_champion_and_is_not_created(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    assert run_module.champion_version(settings) is None
    assert not (tmp_path / "state").exists()


def test_a_store_that_exists_is_asked(tmp_path: Path, monkeypatch) -> None:
    settings = load_settings(state_dir=tmp_path)
    (tmp_path / "mlflow.db").touch()
    asked = []

    def alias(client, name):
        asked.append(name)
        return type("Version", (), {"version": 4})()

    monkeypatch.setattr("slipway.registry.get_client", lambda uri: uri)
    monkeypatch.setattr("slipway.registry.get_alias_version", alias)
    assert run_module.champion_version(settings) == "4"
    assert asked == [settings.model_name]


def test_the_champion_of_an_existing_local_store_is_looked_up_beside_the_first_tasks(
    tmp_path: Path, monkeypatch
) -> None:
    import threading

    settings = load_settings(state_dir=tmp_path)
    (tmp_path / "mlflow.db").touch()
    release = threading.Event()
    order = []

    def slow_look_up(_):
        release.wait(timeout=10)
        order.append("looked up")
        return "7"

    monkeypatch.setattr(run_module, "champion_version", slow_look_up)
    champion = run_module._ChampionBefore(settings)

    class Events:
        def task_started(self, task):
            order.append(task)

        def task_finished(self, task, status, seconds):
            pass

    events = champion.ahead(Events())
    events.task_started("pull-data")
    events.task_started("validate-data")  # neither waits: they never open the store
    assert order == ["pull-data", "validate-data"]
    release.set()
    events.task_started("search")
    assert order == ["pull-data", "validate-data", "looked up", "search"]
    assert champion.version() == "7"


def test_a_failed_look_up_beside_the_tasks_is_raised_to_the_run(tmp_path: Path, monkeypatch):
    settings = load_settings(state_dir=tmp_path)
    (tmp_path / "mlflow.db").touch()

    def unreachable(_):
        raise RemoteUnavailableError("MLflow store unreadable")

    monkeypatch.setattr(run_module, "champion_version", unreachable)
    champion = run_module._ChampionBefore(settings)
    with pytest.raises(RemoteUnavailableError, match="unreadable"):
        champion.version()


def test_a_tracking_server_is_asked_before_the_pipeline(tmp_path: Path, monkeypatch) -> None:
    settings = load_settings(state_dir=tmp_path, tracking_uri="http://mlflow.invalid:5000")

    def unreachable(_):
        raise RemoteUnavailableError("MLflow unreachable")

    monkeypatch.setattr(run_module, "champion_version", unreachable)
    with pytest.raises(RemoteUnavailableError, match="unreachable"):
        run_module._ChampionBefore(settings)
