"""The task log and the task events of a local run, without running a pipeline."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from itertools import count
from pathlib import Path

import pytest
from kfp.local import logging_utils, status

from slipway.orchestration.task_log import (
    TaskStatus,
    TaskWatcher,
    executor_tasks,
    new_run_log,
    output_to,
)
from tests.support import REPO


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def task_started(self, task: str) -> None:
        self.events.append(("started", task))

    def task_finished(self, task: str, status: TaskStatus, seconds: float) -> None:
        self.events.append(("finished", task, status, seconds))


def kfp_logs_task(name: str, task_status: status.Status | None) -> None:
    """What kfp.local's task dispatcher logs around one task (None: it raises instead)."""
    with logging_utils.local_logger_context():
        logging.info(f"Executing task {logging_utils.format_task_name(name)}")
        logging.info("Streamed logs:\n")
        if task_status is not None:
            logging.info(
                f"Task {logging_utils.format_task_name(name)} finished with status "
                f"{logging_utils.format_status(task_status)}"
            )


def test_kfp_task_records_become_one_start_and_one_end_per_task(capsys) -> None:
    recorder = Recorder()
    clock = count(start=10.0, step=1.5)
    watcher = TaskWatcher(recorder, tasks=["pull-data", "search"], clock=lambda: next(clock))
    with watcher.watching():
        kfp_logs_task("pull-data", status.Status.SUCCESS)
        kfp_logs_task("search", status.Status.SUCCESS)
    assert recorder.events == [
        ("started", "pull-data"),
        ("finished", "pull-data", TaskStatus.SUCCEEDED, 1.5),
        ("started", "search"),
        ("finished", "search", TaskStatus.SUCCEEDED, 1.5),
    ]
    assert watcher not in logging.getLogger().filters


def test_a_task_kfp_raised_for_is_failed_and_one_never_started_is_skipped() -> None:
    recorder = Recorder()
    clock = iter([0.0, 4.0])
    watcher = TaskWatcher(recorder, tasks=["validate-data", "promote"], clock=lambda: next(clock))

    def kfp_raises() -> None:
        kfp_logs_task("validate-data", None)  # raise_on_error: kfp raises, logs no end
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), watcher.watching():
        kfp_raises()
    assert recorder.events == [
        ("started", "validate-data"),
        ("finished", "validate-data", TaskStatus.FAILED, 4.0),
        ("finished", "promote", TaskStatus.SKIPPED, 0.0),
    ]
    assert watcher not in logging.getLogger().filters


def test_a_failure_kfp_logs_is_failed_and_other_records_are_ignored() -> None:
    recorder = Recorder()
    watcher = TaskWatcher(recorder, clock=lambda: 0.0)
    with watcher.watching():
        kfp_logs_task("evaluate", status.Status.FAILURE)
        with logging_utils.local_logger_context():
            logging.info("Task 'evaluate' outputs:\n    Output: True")
    assert recorder.events == [
        ("started", "evaluate"),
        ("finished", "evaluate", TaskStatus.FAILED, 0.0),
    ]


def test_executor_tasks_of_the_compiled_pipeline_include_the_conditional_promote() -> None:
    from kfp.components import load_component_from_file

    pipeline = load_component_from_file(str(REPO / "pipelines" / "training_pipeline.yaml"))
    assert sorted(executor_tasks(pipeline.pipeline_spec)) == [
        "evaluate",
        "promote",
        "pull-data",
        "search",
        "search-plan",  # inside the search-fan-out sub-DAG, its condition and its loop
        "search-shard",
        "validate-data",
    ]


def test_each_run_gets_its_own_log_folder(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    first, second = new_run_log(tmp_path, now), new_run_log(tmp_path, now)
    assert first == tmp_path / "runs" / "20260102-030405" / "pipeline.log"
    assert second == tmp_path / "runs" / "20260102-030405-2" / "pipeline.log"
    assert first.parent.is_dir()
    assert second.parent.is_dir()


def test_output_to_captures_python_fds_and_subprocesses_then_restores(tmp_path, capfd) -> None:
    log = tmp_path / "pipeline.log"
    before = (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino)
    with output_to(log) as terminal:
        print("\x1b[96m'search'\x1b[0m printed")
        print("to stderr", file=sys.stderr)
        os.write(1, b"raw fd 1\n")
        subprocess.run([sys.executable, "-c", "import sys; print('child'); sys.exit(0)"])
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child err\\n')"])
        terminal.write("progress line\n")
    assert (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino) == before
    logged = log.read_text()
    for line in ("'search' printed", "to stderr", "raw fd 1", "child", "child err"):
        assert line in logged
    assert "\x1b[" not in logged  # kfp's colours stay out of the file
    assert "progress line" not in logged
    print("after")
    out, err = capfd.readouterr()
    assert "progress line" in out
    assert "after" in out
    assert "printed" not in out + err
    assert "child" not in out + err


def test_output_to_restores_everything_when_the_block_raises(tmp_path) -> None:
    before = (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino)
    with pytest.raises(ValueError, match="inside"), output_to(tmp_path / "pipeline.log"):
        raise ValueError("inside")
    assert (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino) == before


def test_output_to_in_a_process_whose_stdout_is_fd_1(tmp_path: Path) -> None:
    """The terminal stream is a copy of fd 1 itself: it stays on the pipe, the rest goes to the log."""
    log = tmp_path / "pipeline.log"
    program = (
        "import os, subprocess, sys\n"
        "from pathlib import Path\n"
        "from slipway.orchestration.task_log import output_to\n"
        f"with output_to(Path({str(log)!r})) as terminal:\n"
        "    print('to the log'); os.write(1, b'fd to the log\\n')\n"
        "    subprocess.run(['echo', 'child to the log'])\n"
        "    terminal.write('to the terminal\\n')\n"
        "print('after')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "to the terminal\nafter\n"
    assert log.read_text().splitlines() == ["to the log", "fd to the log", "child to the log"]
