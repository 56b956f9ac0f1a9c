"""bench.pipeline's reading of a run log: task times, and slipway run's own time around them."""

from datetime import datetime

from bench.pipeline import pipeline_section, run_phases, task_exits, task_seconds

LOG = """\
10:00:05.000 - INFO - Running pipeline: 'slipway-training'
10:00:05.010 - INFO - Executing task 'pull-data'
    import time:       105 |        105 |   _io
    [KFP Executor 2026-12-01 10:00:06,210 INFO]: Wrote executor output file to /x/executor_output.json.
10:00:06.510 - INFO - Task 'pull-data' finished with status SUCCESS
10:00:06.520 - INFO - Executing task 'search'
10:00:16.520 - INFO - Task 'search' finished with status SUCCESS
10:00:16.600 - INFO - Pipeline 'slipway-training' finished with status SUCCESS
"""


def test_tasks_and_the_time_before_and_after_them_come_from_the_log(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text(LOG)
    started = datetime(2026, 12, 1, 10, 0, 1).timestamp()
    phases = run_phases(log, started, started + 17.6)
    assert round(phases["before"], 3) == 4.0
    assert round(phases["after"], 3) == 2.0
    assert {k: round(v, 3) for k, v in task_seconds(log).items()} == {
        "pull-data": 1.5,
        "search": 10.0,
    }


def test_a_tasks_exit_is_from_its_outputs_written_to_its_end(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text(LOG)
    # search wrote no outputs line: no exit time, rather than one measured from pull-data's
    assert {k: round(v, 3) for k, v in task_exits(log).items()} == {"pull-data": 0.3}


def test_the_section_states_both_ratios_and_the_rows_around_the_tasks():
    task = {"wall": 2.0, "library": 1.0, "imports": 0.5, "exit": 0.25}
    measured = {
        "pipeline": [30.0],
        "library": [20.0],
        "pipeline_median": 30.0,
        "library_median": 20.0,
        "ratio": 1.5,
        "paused": [19.0, 21.0],
        "paused_median": 20.0,
        "ratio_paused": 1.5,
        "library_extras": 4.0,
        "ratio_without_extras": 30.0 / 16.0,
        "tasks": {"pull-data": task, "search": task},
        "library_imports": 3.0,
        "library_after": 0.2,
        "before": 5.0,
        "after": 0.5,
    }
    text = pipeline_section(measured, 3)
    assert "1.50x; target ≤ 1.5x: met" in text
    assert "the ratio is 1.88x" in text
    assert "(`pause_gc_in_imports`) | 20.0 s (1.50x) | 19.0, 21.0 |" in text
    assert "| pull-data | 2.0 s | 1.0 s | 0.5 s | 0.25 s | +1.0 s |" in text
    assert (
        "| `slipway run` before the first task | 5.0 s | 3.0 s (the imports) | | | +2.0 s |" in text
    )
    assert "| `slipway run` after the last task | 0.5 s | 0.2 s | | | +0.3 s |" in text
    assert (
        "`slipway run` before and after them 5.5 s, and kfp.local between the tasks 20.5 s" in text
    )
