"""``slipway run``'s output: one line per task, the log path, plain text off a terminal."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slipway.cli import app as cli
from slipway.cli import pipeline as pipeline_cli
from slipway.cli.common import make_console
from slipway.config import load_settings
from slipway.errors import PipelineRunError
from slipway.orchestration import TaskStatus, TrainingRunResult

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour and style codes
TASKS = ("pull-data", "validate-data", "search", "evaluate", "promote")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(progress: pipeline_cli._ConsoleProgress, terminal: io.StringIO) -> None:
    """The events of a run where promote failed and nothing was skipped."""
    with progress.running(terminal):
        for task in TASKS:
            progress.task_started(task)
            failed = task == "promote"
            status = TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED
            progress.task_finished(task, status, 1.25)


def test_one_line_per_finished_task_and_plain_text_off_a_terminal(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    terminal = io.StringIO()
    drive(pipeline_cli._ConsoleProgress(load_settings(state_dir=tmp_path)), terminal)
    lines = terminal.getvalue().splitlines()
    assert lines == [
        "✓ pull-data           1.2 s",
        "✓ validate-data       1.2 s",
        "✓ search              1.2 s",
        "✓ evaluate            1.2 s",
        "✗ promote             1.2 s",
    ]
    assert "\x1b[" not in terminal.getvalue()


def test_on_a_terminal_the_lines_are_coloured_unless_no_color(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    settings = load_settings(state_dir=tmp_path)
    coloured = Tty()
    drive(pipeline_cli._ConsoleProgress(settings), coloured)
    assert SGR.search(coloured.getvalue())  # the check below can fail
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Tty()
    drive(pipeline_cli._ConsoleProgress(settings), plain)
    assert not SGR.search(plain.getvalue())
    assert "✗ promote" in plain.getvalue()


def test_skipped_tasks_say_so() -> None:
    out = io.StringIO()
    make_console(file=out).print(pipeline_cli.task_line("promote", TaskStatus.SKIPPED, 0.0))
    assert out.getvalue() == "- promote          skipped\n"


class _PassingCheck:
    """The compile check, passed at once."""

    bytecode = None

    def __init__(self, settings) -> None:
        self.process = self

    def poll(self) -> int:
        return 0

    def wait(self) -> int:
        return 0


@pytest.fixture
def fake_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``slipway run`` with the pipeline check and the run itself replaced."""
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setattr(pipeline_cli, "_CompileCheck", _PassingCheck)
    outcome: dict[str, TrainingRunResult] = {}

    def fake_training(settings, request, progress, capture, bytecode_from=None):
        log = tmp_path / "runs" / "1" / "pipeline.log"
        log.parent.mkdir(parents=True)
        log.write_text("".join(f"executor line {n}\n" for n in range(50)))
        progress.starting(request.dataset_version, log if capture else None)
        with progress.running(None):
            progress.task_started("pull-data")
            progress.task_finished("pull-data", TaskStatus.FAILED, 2.0)
        return outcome["result"](log)

    monkeypatch.setattr("slipway.orchestration.run_training", fake_training)
    return outcome


@pytest.mark.parametrize("no_color", ["", "1"])
def test_a_failed_run_names_the_log_and_shows_its_end_in_plain_text(
    fake_run, monkeypatch, no_color
) -> None:
    monkeypatch.setenv("NO_COLOR", no_color)
    fake_run["result"] = lambda log: TrainingRunResult(
        seconds=1.0,
        champion_before="1",
        champion_after="1",
        failure=PipelineRunError("pipeline slipway-training failed", failed_task="pull-data"),
        log=log,
    )
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 1
    output = result.stdout + result.stderr
    assert "\x1b[" not in output
    log = Path(result.stdout.split("task logs")[1].split()[0])
    assert log.name == "pipeline.log"
    assert f"Task logs: {log}." in result.stderr
    assert "Nothing was promoted" in result.stderr
    assert "executor line 49" in result.stderr
    assert "executor line 29" not in result.stderr  # only the end of the log
    assert "✗ pull-data" in result.stdout


def test_a_validation_failure_prints_the_report(fake_run, tmp_path) -> None:
    report = tmp_path / "report"
    report.write_text("| column_in_dataframe | mean_area |")
    fake_run["result"] = lambda log: TrainingRunResult(
        seconds=1.0,
        champion_before=None,
        champion_after=None,
        failure=PipelineRunError("pipeline failed", failed_task="validate-data"),
        report=report,
        log=log,
    )
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 1
    assert "| column_in_dataframe | mean_area |" in result.stderr
    assert "executor line" not in result.stderr


def test_verbose_leaves_the_output_live(fake_run) -> None:
    seen: list[bool] = []
    fake_run["result"] = lambda log: (
        seen.append(True),
        TrainingRunResult(
            seconds=1.0,
            champion_before=None,
            champion_after=None,
            failure=PipelineRunError("boom", failed_task=None),
        ),
    )[1]
    result = CliRunner().invoke(cli, ["run", "--verbose"])
    assert result.exit_code == 1
    assert seen == [True]
    assert "task logs" not in result.stdout
    assert "Task logs" not in result.stderr


def test_a_finished_run_prints_where_its_html_report_is(fake_run, tmp_path) -> None:
    page = tmp_path / "reports" / "run-1.html"
    summary = {
        "tags": {"slipway.decision_reason": "no champion yet", "slipway.dataset_md5": "ab" * 16},
        "metrics": {"holdout_roc_auc": 0.99},
        "params": {},
    }
    fake_run["result"] = lambda log: TrainingRunResult(
        seconds=1.0,
        champion_before=None,
        champion_after=None,
        run_id="run-1",
        summary=summary,
        log=log,
        html_report=page,
    )
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 0, result.stderr
    assert f"run report       {page}" in result.stdout


def test_the_compile_check_before_a_first_run_writes_no_state_folder(tmp_path, monkeypatch):
    """It compiles into a temporary cache (moved into the state folder by the run, or removed)."""
    monkeypatch.setenv("SLIPWAY_STATE_DIR", str(tmp_path / "state"))
    settings = load_settings()
    with pipeline_cli._compile_check(settings) as check:
        assert check.wait() == 0
        assert check.bytecode is not None
        assert list(check.bytecode.rglob("*.pyc"))  # kfp, slipway, ... compiled once, kept
    assert not check.bytecode.exists()
    assert not (tmp_path / "state").exists()


def test_the_program_freezes_its_heap_at_exit_once_however_often_it_runs(tmp_path):
    """``slipway run`` leaves its teardown nothing to sweep; the caller's collector stays on."""
    import subprocess
    import sys

    probe = (
        "import atexit, gc\n"
        "import slipway.orchestration as orchestration\n"
        "runs = []\n"
        "atexit.register(lambda: print('ran', runs, 'frozen', gc.get_freeze_count() > 0))\n"
        "def counted():\n"
        "    runs.append(1)\n"
        "    return prepare_exit()\n"
        "prepare_exit = orchestration.prepare_exit\n"
        "orchestration.prepare_exit = counted\n"
        "from slipway.cli import pipeline\n"
        "pipeline._exit_quickly(); pipeline._exit_quickly()\n"
        "print('frozen now', gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["frozen now 0", "ran [1] frozen True"]
